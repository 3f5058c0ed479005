"""Ping-pong round trips: this process is the client, an echo server runs in a child
process it starts (`python -m pollnet echo-server`), each pinned to its own CPU.

Busy-pollers need a CPU each: on one shared CPU two spinning processes collapse to
scheduler-tick round trips, so with 2+ CPUs the client and server are pinned apart.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pollnet.api import PollConnection, PollTcpClient
from pollnet.bench.stats import LatencySummary, summarize
from pollnet.config import AnyConfig, config_from_dict
from pollnet.errors import PollnetError
from pollnet.factory import backend_module, create_client

LISTENING = re.compile(r"listening on (\S+):(\d+)")
ProgressFn = Callable[[int, int], None]


class BenchError(PollnetError):
    """The benchmark could not run (server did not start, connection lost, ...)."""


@dataclass
class PingPongResult:
    backend: str
    size: int
    warmup: int
    summary: LatencySummary
    client_cpu: int | None
    server_cpu: int | None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        rtt = self.summary.as_dict()
        return {
            "test": "ping-pong",
            "backend": self.backend,
            "size": self.size,
            "count": rtt.pop("count"),
            "warmup": self.warmup,
            "msgs_per_sec": rtt.pop("msgs_per_sec"),
            "rtt_us": rtt,
            "client_cpu": self.client_cpu,
            "server_cpu": self.server_cpu,
            **self.extra,
        }


class _Counter:
    """The client's handler: counts echoed bytes, allocates nothing."""

    __slots__ = ("got", "lost")

    def __init__(self) -> None:
        self.got = 0
        self.lost = ""

    def on_tcp_data(self, conn: PollConnection, data: memoryview) -> int:
        self.got += len(data)
        return 0

    def on_tcp_disconnect(self, conn: PollConnection) -> None:
        self.lost = conn.last_error or "disconnected"
        self.got = 1 << 62  # ends any wait loop at once


def pick_cpus() -> tuple[int | None, int | None]:
    """(client CPU, server CPU): two different ones when this process may use 2+."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None, None
    if len(cpus) < 2:
        return None, None
    return cpus[0], cpus[1]


@contextmanager
def pinned(cpu: int | None) -> Iterator[None]:
    """Run the block on `cpu` (None: unpinned), restoring the previous affinity after."""
    if cpu is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@contextmanager
def echo_server_process(
    cfg: AnyConfig, cpu: int | None, start_timeout: float = 30.0
) -> Iterator[tuple[str, int]]:
    """Start `pollnet echo-server` with `cfg` in a child process; yield (ip, port)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(cfg.model_dump(mode="json"), f)
        path = f.name
    cmd = [sys.executable, "-m", "pollnet", "echo-server", "--config", path]
    if cpu is not None:
        cmd += ["--cpu", str(cpu)]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_child_env()
    )
    try:
        yield _wait_listening(proc, start_timeout)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()
        os.unlink(path)


def _child_env() -> dict[str, str]:
    # The config file already holds the effective values; env overrides must not differ.
    return {k: v for k, v in os.environ.items() if not k.startswith("POLLNET_")}


def _wait_listening(proc: subprocess.Popen[str], timeout: float) -> tuple[str, int]:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(timeout=0.1):
                if proc.poll() is not None:
                    break
                continue
            line = proc.stdout.readline()
            if not line:
                break
            match = LISTENING.search(line)
            if match:
                return match.group(1), int(match.group(2))
    err = proc.stderr.read() if proc.stderr is not None and proc.poll() is not None else ""
    raise BenchError(f"echo server did not start: {err.strip() or 'no listening line'}")


def _connect(client: PollTcpClient, handler: _Counter, timeout: float) -> PollConnection:
    deadline = time.monotonic() + timeout
    while client.conn is None:
        client.poll(handler)
        if time.monotonic() > deadline:
            raise BenchError(f"could not connect to the echo server: {client.last_error}")
    return client.conn


def run_pingpong(
    cfg: AnyConfig,
    count: int,
    size: int,
    warmup: int = 1000,
    pin: bool = True,
    progress: ProgressFn | None = None,
) -> PingPongResult:
    """Round-trip `count` messages of `size` bytes (after `warmup` unmeasured ones)."""
    if count < 1 or size < 1 or warmup < 0:
        raise BenchError("count and size must be at least 1, warmup at least 0")
    backend_module(cfg.backend)  # fail here, clearly, rather than in the child process
    client_cpu, server_cpu = pick_cpus() if pin else (None, None)
    server_cfg = config_from_dict(
        {**cfg.model_dump(), "server": {**cfg.server.model_dump(), "port": 0}}
    )
    with echo_server_process(server_cfg, server_cpu) as (ip, port), pinned(client_cpu):
        ip = "127.0.0.1" if ip == "0.0.0.0" else ip
        client_cfg = config_from_dict(
            {
                **cfg.model_dump(),
                "client": {**cfg.client.model_dump(), "server_ip": ip, "server_port": port,
                           "conn_retry_sec": 0.01},
            }
        )
        client = create_client(client_cfg)
        handler = _Counter()
        conn = _connect(client, handler, timeout=10.0)
        samples = array("q", bytes(8 * count))
        first_ns, last_ns = _loop(client, conn, handler, samples, size, warmup, progress)
        client.close("bench done")
        client.poll(handler)
    summary = summarize(samples, last_ns - first_ns)
    return PingPongResult(cfg.backend, size, warmup, summary, client_cpu, server_cpu)


def _loop(
    client: PollTcpClient,
    conn: PollConnection,
    handler: _Counter,
    samples: array[int],
    size: int,
    warmup: int,
    progress: ProgressFn | None,
) -> tuple[int, int]:
    msg = bytes(size)
    poll = client.poll
    write = conn.write
    clock = time.perf_counter_ns
    count = len(samples)
    total = warmup + count
    step = max(1, total // 100)
    first_ns = 0
    t1 = 0
    for i in range(total):
        if i == warmup:
            first_ns = clock()
        handler.got = 0
        t0 = clock()
        write(msg)
        while handler.got < size:
            poll(handler)
        t1 = clock()
        if handler.lost:
            raise BenchError(f"lost the echo server after {i} messages: {handler.lost}")
        if i >= warmup:
            samples[i - warmup] = t1 - t0
        if progress is not None and i % step == 0:
            progress(i, total)
    if progress is not None:
        progress(total, total)
    return first_ns, t1
