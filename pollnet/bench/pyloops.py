"""The rows a Python user would pick instead of pollnet, measured like ours: `python-busy`
(a plain non-blocking socket busy loop: send, spin on recv), `asyncio` and `uvloop` (a
Protocol echo server and a Protocol client doing ping-pong). Latency only.

Each runs in a bench worker process: `serve(spec)` prints READY and echoes until told to
stop; `latency(spec)` returns the same result as measure.latency (samples in ns go to
`samples_path`).
"""

from __future__ import annotations

import asyncio
import importlib
import socket
import time
from array import array
from collections.abc import Callable
from typing import Any, cast

from pollnet.bench.spec import WorkerSpec

KINDS = ("python-busy", "asyncio", "uvloop")


def unavailable(kind: str) -> str:
    """Why this row cannot run here ("" when it can)."""
    if kind == "uvloop":
        try:
            importlib.import_module("uvloop")
        except ImportError:
            return "uvloop is not installed: pip install 'pollnet[uvloop]'"
    return ""


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        uvloop = importlib.import_module("uvloop")
        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        return loop
    return asyncio.new_event_loop()


# ------------------------------------------------------------------ servers


def serve(spec: WorkerSpec, ready: Callable[[str, int], None], stopped: Callable[[], bool]) -> None:
    listener = socket.create_server((spec.server_ip, 0))
    ip, port = listener.getsockname()[:2]
    if spec.kind == "python-busy":
        ready(ip, port)
        _busy_echo(listener, stopped)
        return
    loop = _new_loop(spec.kind)
    server = loop.run_until_complete(loop.create_server(_Echo, sock=listener))
    ready(ip, port)

    async def wait() -> None:
        while not stopped():
            await asyncio.sleep(0.05)

    try:
        loop.run_until_complete(wait())
    finally:
        server.close()
        loop.close()


def _busy_echo(listener: socket.socket, stopped: Callable[[], bool]) -> None:
    listener.setblocking(False)
    conn: socket.socket | None = None
    buf = bytearray(65536)
    view = memoryview(buf)
    while not stopped():
        if conn is None:
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                continue
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            n = conn.recv_into(buf)
        except BlockingIOError:
            continue
        if n == 0:
            conn.close()
            conn = None
            continue
        conn.sendall(view[:n])


class _Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is its own class
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


# ------------------------------------------------------------------ clients


def latency(spec: WorkerSpec) -> dict[str, Any]:
    count = spec.count
    warmup = spec.warmup
    samples = array("q", bytes(8 * count))
    msg = bytes(spec.size)
    if spec.kind == "python-busy":
        done, cold, start, end = _busy_pingpong(spec, msg, samples, warmup)
    else:
        done, cold, start, end = _protocol_pingpong(spec, msg, samples, warmup)
    with open(spec.samples_path, "wb") as f:
        samples[:done].tofile(f)
    return {"done": done, "cold_ns": cold, "elapsed_ns": end - start, "warmup_done": warmup}


def _busy_pingpong(spec: WorkerSpec, msg: bytes, samples: array[int], warmup: int
                   ) -> tuple[int, int, int, int]:
    """The 10-line loop: send, spin on recv until the echo is whole."""
    sock = socket.create_connection((spec.server_ip, spec.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    buf = bytearray(65536)
    size = len(msg)
    clock = time.perf_counter_ns
    cold = 0
    start = end = 0
    try:
        for i in range(-warmup, len(samples)):
            if i == 0:
                start = clock()
            t0 = clock()
            sock.send(msg)
            got = 0
            while got < size:
                try:
                    n = sock.recv_into(buf)
                except BlockingIOError:
                    continue
                if n == 0:
                    raise ConnectionError("the echo server closed the connection")
                got += n
            end = clock()
            if i == -warmup:
                cold = end - t0
            if i >= 0:
                samples[i] = end - t0
    finally:
        sock.close()
    return len(samples), cold, start, end


class _PingPong(asyncio.Protocol):
    """Sends the message again as soon as its echo is whole, `total` times."""

    def __init__(self, msg: bytes, samples: array[int], warmup: int,
                 done: asyncio.Future[None]) -> None:
        self.msg = msg
        self.samples = samples
        self.i = -warmup
        self.done = done
        self.got = 0
        self.clock = time.perf_counter_ns
        self.t0 = self.start = self.end = self.cold = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is its own class
        try:
            transport.get_extra_info("socket").setsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._send()
        except Exception as exc:  # the loop would only log it: end the run with it
            self.done.set_exception(exc)

    def _send(self) -> None:
        if self.i == 0:
            self.start = self.clock()
        self.got = 0
        self.t0 = self.clock()
        self.transport.write(self.msg)

    def data_received(self, data: bytes) -> None:
        self.got += len(data)
        if self.got < len(self.msg):
            return
        self.end = self.clock()
        if not self.cold:  # the very first round trip
            self.cold = self.end - self.t0
        if self.i >= 0:
            self.samples[self.i] = self.end - self.t0
        self.i += 1
        if self.i >= len(self.samples):
            self.done.set_result(None)
            return
        self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"the echo server went away: {exc}"))


def _protocol_pingpong(spec: WorkerSpec, msg: bytes, samples: array[int], warmup: int
                       ) -> tuple[int, int, int, int]:
    loop = _new_loop(spec.kind)
    try:
        done: asyncio.Future[None] = loop.create_future()
        proto = _PingPong(msg, samples, warmup, done)
        transport, _ = loop.run_until_complete(loop.create_connection(
            lambda: proto, spec.server_ip, spec.port))
        loop.run_until_complete(done)
        transport.close()
    finally:
        loop.close()
    return len(samples), proto.cold, proto.start, proto.end
