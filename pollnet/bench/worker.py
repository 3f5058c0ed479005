"""One side of one benchmark row, in its own process (and namespace):

    python -m pollnet.bench.worker '{"role": "server", "kind": "socket", ...}'

The server prints `READY <ip> <port>` once listening and echoes until SIGTERM/SIGINT (the
native echo returns to Python at least once a second to see them). The client connects,
measures, writes raw samples to `samples_path` (int64 round-trip ns) and prints one JSON
line `RESULT {...}`; progress goes to stderr as `PROGRESS <done> <total>`. Errors print
`ERROR <why>` and exit 3. Each process pins itself to `cpu` first.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import sys
import time
import tracemalloc
from array import array
from collections.abc import Callable
from dataclasses import replace
from types import FrameType
from typing import Any

from pollnet.bench import loops, pyloops, sockperf
from pollnet.bench.handlers import Counter, Echo, FastEcho, Sink
from pollnet.bench.rows import ROW_KINDS
from pollnet.bench.spec import WorkerSpec

EFVI_PORT = 7001
_stop = [False]


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _stop[0] = True


def emit(tag: str, payload: object = "") -> None:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    sys.stdout.write(f"{tag} {text}\n")
    sys.stdout.flush()


# ------------------------------------------------------------------ endpoints


def efvi_options(spec: WorkerSpec, side: str, max_conns: int = 64) -> Any:
    from pollnet.config import EfviOptions

    link = spec.link
    kw: dict[str, Any] = {"link": link, "max_conn_cnt": max_conns,
                          "max_time_wait_conn_cnt": 1024}
    if link != "sim":
        kw["interface"] = spec.ifname
        kw["local_ip"] = getattr(spec, f"{side}_ip")
    kw.update(spec.efvi)
    if kw.get("pcap"):  # one capture per side: FILE -> FILE.client.pcap / FILE.server.pcap
        kw["pcap"] = f"{kw['pcap'].removesuffix('.pcap')}.{side}.pcap"
    return EfviOptions(**kw)


def pollnet_config(spec: WorkerSpec, **sections: Any) -> Any:
    from pollnet.config import config_from_dict

    backend = "efvi" if spec.kind == "efvi-pollnet" else spec.kind
    merged: dict[str, Any] = {"backend": backend}
    if backend == "efvi":
        side = "server" if "server" in sections else "client"
        merged["efvi"] = efvi_options(spec, side).model_dump()
    for name, values in [*sections.items(), *spec.config.items()]:
        merged[name] = {**merged.get(name, {}), **values}
    return config_from_dict(merged)


def make_server(spec: WorkerSpec) -> tuple[Any, str, int]:
    """(server, ip, port) for kind socket/tcpdirect (pollnet API) or efvi/native."""
    kind = spec.kind
    if ROW_KINDS[kind].efvitcp:
        from pollnet.backends.efvi import TcpServer

        srv = TcpServer(efvi_options(spec, "server", spec.max_conns), port=EFVI_PORT)
        return srv, srv.local_ip, EFVI_PORT
    from pollnet.factory import create_server

    port = EFVI_PORT if kind == "efvi-pollnet" else 0  # the efvi stack picks no port
    listen = "0.0.0.0" if spec.link == "sim" else spec.server_ip
    cfg = pollnet_config(spec, server={"listen_ip": listen, "port": port,
                                       "max_conns": spec.max_conns})
    server = create_server(cfg)
    ip, port = server.address
    return server, ip, port


class ClientSide:
    """A connected client of any kind: `send(msg)`, `poll(handler)`, `close()`."""

    def __init__(self, spec: WorkerSpec, handler: Counter, streams: int = 1,
                 wire_peer: Any = None) -> None:
        self.spec = spec
        self.efvitcp = ROW_KINDS[spec.kind].efvitcp  # TcpClient, not the pollnet API
        self.handler = handler
        self.clients: list[Any] = []
        self.conns: list[Any] = []
        self.poll2: Callable[[Any], Any] | None = None
        self.handler2: Any = None
        self.stack: Any = None
        deadline = time.monotonic() + spec.connect_timeout
        if self.efvitcp:
            from pollnet.backends.efvi import TcpClient

            opts = efvi_options(spec, "client", max_conns=max(1, streams) + 2)
            wire = wire_peer.wire if wire_peer is not None else None
            client = TcpClient(opts, wire=wire, max_conns=max(1, streams) + 2)
            self.clients.append(client)
            self.stack = client._stack
            if wire_peer is not None:
                self.poll2 = wire_peer.poll
                self.handler2 = FastEcho()
            ip = wire_peer.local_ip if wire_peer is not None else spec.server_ip
            for _ in range(streams):
                conn = client.connect(ip, spec.port)
                before = handler.established
                while handler.established == before:
                    self._poll_all()
                    self._check(deadline)
                self.conns.append(conn)
            self.poll = client.poll
            self.send = self.conns[0].send
        else:
            from pollnet.factory import create_client

            cfg = pollnet_config(spec, client={"server_ip": spec.server_ip,
                                               "server_port": spec.port,
                                               "conn_retry_sec": 0.01})
            if wire_peer is not None:  # efvi-pollnet on the sim link: server in-process
                self.poll2 = wire_peer.poll
                self.handler2 = FastEcho()
            for _ in range(streams):
                c = create_client(cfg)
                self.clients.append(c)
                while c.conn is None:
                    c.poll(handler)
                    if self.poll2 is not None:
                        self.poll2(self.handler2)
                    self._check(deadline)
                self.conns.append(c.conn)
            self.poll = self.clients[0].poll
            self.send = self.conns[0].write

    def _poll_all(self) -> None:
        if self.poll2 is not None:
            self.poll2(self.handler2)
        for c in self.clients:
            c.poll(self.handler)

    def _check(self, deadline: float) -> None:
        if time.monotonic() > deadline:
            raise loops.LoopError(
                f"could not connect to {self.spec.server_ip}:{self.spec.port}"
                f" ({self.handler.lost or 'no answer'})")
        if self.handler.lost and self.efvitcp:
            raise loops.LoopError(f"connect failed: {self.handler.lost}")

    def close(self) -> None:
        h = self.handler
        h.got = 0
        for conn in self.conns:
            try:
                if self.efvitcp:
                    conn.send_fin()
                else:
                    conn.close("bench done")
            except Exception:  # already gone: nothing to close
                pass
        end = time.monotonic() + 0.5
        while time.monotonic() < end and (not self.efvitcp or h.conns):
            self._poll_all()
            if not self.efvitcp:
                break
        for c in self.clients:
            closer = getattr(c, "close", None)
            if self.efvitcp and closer is not None:
                closer()


def make_sim_server(spec: WorkerSpec) -> Any:
    if spec.kind == "efvi-pollnet":
        return make_server(replace(spec, server_ip="0.0.0.0"))[0]
    from pollnet.backends.efvi import SimWire, TcpServer

    wire = SimWire(static_arp=True)
    return TcpServer(efvi_options(spec, "server", spec.max_conns), port=EFVI_PORT,
                     wire=wire)


# ------------------------------------------------------------------ server role


def serve(spec: WorkerSpec) -> None:
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    if spec.kind in pyloops.KINDS:
        pyloops.serve(spec, lambda ip, port: emit("READY", f"{ip} {port}"), lambda: _stop[0])
        return
    server, ip, port = make_server(spec)
    emit("READY", f"{ip} {port}")
    if spec.kind == "native":
        from pollnet.backends.efvi.core import binding as _core

        ffi, lib = _core.require()
        res = ffi.new("pn_bench_echo_result *")
        stack = server._stack
        while not _stop[0]:
            rc = lib.pn_bench_echo(stack, 1_000_000_000, res)
            if rc < 0 and rc != lib.PN_EAGAIN:
                raise loops.LoopError(f"native echo: {_core.c_string(lib.pn_strerror(rc))}")
        return
    handler: object = Echo() if spec.sockperf_aware else FastEcho()
    if spec.sink:
        handler = Sink()
    poll = server.poll
    gc.disable()
    while not _stop[0]:
        poll(handler)


# ------------------------------------------------------------------ client role


def _message(spec: WorkerSpec) -> bytes | bytearray:
    size = spec.size
    if spec.peer == "sockperf":
        return sockperf.message(size)
    return bytes(size)


def _progress() -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        sys.stderr.write(f"PROGRESS {done} {total}\n")
        sys.stderr.flush()

    return report


def latency(spec: WorkerSpec) -> dict[str, Any]:
    if spec.kind in pyloops.KINDS:
        return pyloops.latency(spec)
    handler = Counter()
    sim_server = make_sim_server(spec) if spec.link == "sim" else None
    if sim_server is not None:
        spec = replace(spec, port=EFVI_PORT, server_ip="127.0.0.1")
    side = ClientSide(spec, handler, wire_peer=sim_server)
    count = spec.count
    samples = array("q", bytes(8 * count))
    msg = _message(spec)
    if spec.kind == "native":
        res = _native_pingpong(spec, side, sim_server, samples, msg)
    else:
        gc.disable()
        res = loops.pingpong(
            side.send, side.poll, handler, msg, samples,
            warmup=spec.warmup, warmup_ns=spec.warmup_ns,
            duration_ns=spec.duration_ns,
            interval_ns=spec.interval_ns,
            poll2=side.poll2, handler2=side.handler2, progress=_progress())
        gc.enable()
    side.close()
    with open(spec.samples_path, "wb") as f:
        samples[: res.done].tofile(f)
    return {"done": res.done, "cold_ns": res.cold_ns, "elapsed_ns": res.end_ns - res.start_ns,
            "warmup_done": res.warmup_done}


def _native_pingpong(spec: WorkerSpec, side: ClientSide, sim_server: Any, samples: array[int],
                     msg: bytes | bytearray) -> loops.LoopResult:
    from pollnet.backends.efvi.core import binding as _core

    ffi, lib = _core.require()
    p = ffi.new("pn_bench_params *")
    p.conn_id = side.conns[0].conn_id
    p.size = len(msg)
    p.warmup = spec.warmup
    p.count = len(samples)
    p.duration_ns = spec.duration_ns
    p.interval_ns = spec.interval_ns
    p.timeout_ns = 5_000_000_000
    if sim_server is not None:
        p.echo_peer = sim_server._stack
    keep = ffi.from_buffer(msg)
    p.payload = keep
    res = ffi.new("pn_bench_result *")
    out = ffi.from_buffer("int64_t[]", samples)
    rc = lib.pn_bench_pingpong(side.stack, p, out, res)
    if rc < 0:
        raise loops.LoopError(f"native loop stopped after {res.done} samples: "
                              f"{_core.c_string(lib.pn_strerror(rc))}")
    _progress()(int(res.done), len(samples))
    return loops.LoopResult(int(res.done), int(res.cold_ns), int(res.start_ns),
                            int(res.end_ns), int(p.warmup))


def idle(spec: WorkerSpec) -> dict[str, Any]:
    """ns per poll() with a connected, silent connection (and, for efvi, per pn_poll)."""
    handler = Counter()
    sim_server = make_sim_server(spec) if spec.link == "sim" else None
    if sim_server is not None:
        spec = replace(spec, port=EFVI_PORT, server_ip="127.0.0.1")
    side = ClientSide(spec, handler, wire_peer=sim_server)
    polls = spec.polls
    poll = side.poll
    # CPU time of this thread, not wall time: polling with nothing to do never waits, and
    # on a shared machine the wall clock also counts the time other processes ran.
    cpu = time.thread_time_ns
    gc.disable()
    best = None
    for _ in range(5):
        t0 = cpu()
        for _ in range(polls):
            poll(handler)
        dt = cpu() - t0
        best = dt if best is None else min(best, dt)
    gc.enable()
    out: dict[str, Any] = {"ns_per_poll": (best or 0) / polls, "polls": polls}
    if side.stack is not None:
        from pollnet.backends.efvi.core import binding as _core

        _, lib = _core.require()
        c_best = None
        for _ in range(5):
            t0 = cpu()
            lib.pn_bench_idle_poll(side.stack, polls, 0)
            dt = cpu() - t0
            c_best = dt if c_best is None else min(c_best, dt)
        out["native_ns_per_poll"] = (c_best or 0) / polls
    side.close()
    return out


def throughput(spec: WorkerSpec) -> dict[str, Any]:
    """One direction, as iperf3: send as fast as each stream accepts for duration_ns to a
    server that discards. Counted: bytes the stack accepted (at most one send buffer more
    than the peer received)."""
    handler = Counter()
    sim_server = make_sim_server(spec) if spec.link == "sim" else None
    if sim_server is not None:
        spec = replace(spec, port=EFVI_PORT, server_ip="127.0.0.1")
    streams = spec.streams
    side = ClientSide(spec, handler, streams=streams, wire_peer=sim_server)
    if side.poll2 is not None:
        side.handler2 = Sink()
    size = spec.size
    msg = bytes(size)
    efvi = ROW_KINDS[spec.kind].efvitcp
    sends = [c.send if efvi else c.write_some for c in side.conns]
    polls = [c.poll for c in side.clients]
    poll2, h2 = side.poll2, side.handler2
    duration = spec.duration_ns or 2_000_000_000
    clock = time.perf_counter_ns
    gc.disable()
    total = 0
    t0 = clock()
    stop = t0 + duration
    now = t0
    while now < stop:
        for send in sends:
            n = send(msg)
            if n > 0:
                total += n
        if poll2 is not None:
            poll2(h2)
        for p in polls:
            p(handler)
        if handler.lost:
            raise loops.LoopError(f"lost the peer: {handler.lost}")
        now = clock()
    elapsed = clock() - t0
    gc.enable()
    out: dict[str, Any] = {
        "bytes": total, "elapsed_ns": elapsed, "streams": streams, "size": size,
        "mb_per_s": total / elapsed * 1e3, "msgs_per_s": total / size / elapsed * 1e9}
    if efvi:
        st = side.clients[0].stats()
        out.update({"out_segs": st.get("TcpOutSegs", 0), "in_segs": st.get("TcpInSegs", 0),
                    "retrans_segs": st.get("TcpRetransSegs", 0),
                    "rto_timeouts": st.get("TcpExtTCPTimeouts", 0),
                    "fast_retrans": st.get("TcpExtTCPFastRetrans", 0)})
        link_stats = getattr(side.clients[0], "link_stats", None)
        if link_stats is not None and spec.link != "sim":
            with contextlib.suppress(Exception):  # an older core: no link counters
                ls = link_stats()
                out.update({f"link_{k}": v for k, v in ls.items()
                            if k in ("tx_frames", "rx_frames", "tx_ring_full",
                                     "tx_kick_retries", "rx_kernel_drops")})
        try:
            info = side.conns[0].info()
            out.update({"mss": info.mss, "snd_wnd": info.snd_wnd, "cwnd": info.cwnd,
                        "srtt_us": info.srtt_us})
        except Exception:  # the connection is gone: no snapshot
            pass
    side.close()
    return out


def connect_rate(spec: WorkerSpec) -> dict[str, Any]:
    """Connections opened (handshake done) and closed per second, one at a time."""
    handler = Counter()
    sim_server = make_sim_server(spec) if spec.link == "sim" else None
    if sim_server is not None:
        spec = replace(spec, port=EFVI_PORT, server_ip="127.0.0.1")
    side = ClientSide(spec, handler, wire_peer=sim_server)
    duration = spec.duration_ns or 1_000_000_000
    clock = time.perf_counter_ns
    n = 0
    t0 = clock()
    stop = t0 + duration
    efvi = ROW_KINDS[spec.kind].efvitcp
    client = side.clients[0]
    deadline_s = 5.0
    while clock() < stop:
        if efvi:
            side.conns[0].close()  # RST: the slot frees at once on both ends
            handler.conns.clear()
            before = handler.established
            client.connect(sim_server.local_ip if sim_server else spec.server_ip,
                           spec.port)
            until = time.monotonic() + deadline_s
            while handler.established == before:
                side._poll_all()
                if time.monotonic() > until:
                    raise loops.LoopError("connect timed out")
            side.conns[0] = handler.conns[-1]
        else:
            client.close("reconnect")
            client.poll(handler)
            client.allow_reconnect()
            until = time.monotonic() + deadline_s
            while client.conn is None:
                client.poll(handler)
                client.allow_reconnect() if handler.lost else None
                if time.monotonic() > until:
                    raise loops.LoopError(f"reconnect timed out: {handler.lost}")
            handler.lost = ""
            handler.got = 0
            side.conns[0] = client.conn
        n += 1
    elapsed = clock() - t0
    side.close()
    return {"connections": n, "elapsed_ns": elapsed, "conn_per_s": n / elapsed * 1e9}


def memory(spec: WorkerSpec) -> dict[str, Any]:
    """Bytes per connection: the client's Python heap (tracemalloc) and, for efvi, the
    stack arena's growth per connection slot; for socket, the kernel's TCP memory."""
    streams = spec.streams
    handler = Counter()
    sim_server = make_sim_server(spec) if spec.link == "sim" else None
    if sim_server is not None:
        spec = replace(spec, port=EFVI_PORT, server_ip="127.0.0.1")
    kernel_before = _tcp_mem_pages()
    slab_before = _socket_slab_bytes()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    side = ClientSide(spec, handler, streams=streams, wire_peer=sim_server)
    heap = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    out: dict[str, Any] = {"streams": streams, "python_bytes_per_conn": heap / streams}
    if ROW_KINDS[spec.kind].stack:
        from pollnet.backends.efvi import footprint

        opts = efvi_options(spec, "client")
        one = footprint(opts, max_conn_cnt=1)
        many = footprint(opts, max_conn_cnt=101)
        out["native_bytes_per_conn"] = (many - one) / 100
        out["arena_bytes_1_conn"] = one
    else:
        # The kernel's side of each client socket: its slab objects (TCP sock + inode;
        # machine-wide counts, so other activity adds noise) and buffer pages in use.
        out["kernel_bytes_per_conn"] = (
            (_socket_slab_bytes() - slab_before)
            + (_tcp_mem_pages() - kernel_before) * 4096) / streams
    side.close()
    return out


def _socket_slab_bytes() -> int:
    total = 0
    try:
        with open("/proc/slabinfo") as f:
            for line in f:
                parts = line.split()
                if parts and parts[0] in ("TCP", "sock_inode_cache"):
                    total += int(parts[1]) * int(parts[3])
    except (OSError, ValueError, IndexError):
        return 0
    return total


def _tcp_mem_pages() -> int:
    try:
        with open("/proc/net/sockstat") as f:
            for line in f:
                if line.startswith("TCP:"):
                    parts = line.split()
                    return int(parts[parts.index("mem") + 1])
    except (OSError, ValueError):
        pass
    return 0


MODES: dict[str, Callable[[WorkerSpec], dict[str, Any]]] = {
    "latency": latency,
    "idle": idle,
    "throughput": throughput,
    "connect": connect_rate,
    "memory": memory,
}


def main(argv: list[str]) -> int:
    spec = WorkerSpec.from_json(argv[1])
    cpu = spec.cpu
    try:
        if cpu is not None:
            os.sched_setaffinity(0, {int(cpu)})
        if spec.role == "server":
            serve(spec)
        else:
            emit("RESULT", MODES[spec.mode](spec))
    except KeyboardInterrupt:
        emit("ERROR", "interrupted")
        return 3
    except Exception as exc:
        emit("ERROR", f"{type(exc).__name__}: {exc}".replace("\n", " "))
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
