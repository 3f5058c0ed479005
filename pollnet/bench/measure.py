"""What a bench client measures, one function per mode: latency (ping-pong samples),
idle (ns per poll), throughput (one direction into a sink), connect (connections per
second) and memory (bytes per connection). Each returns the figures of its RESULT line."""

from __future__ import annotations

import contextlib
import gc
import sys
import time
import tracemalloc
from array import array
from collections.abc import Callable
from typing import Any

from pollnet.bench import loops, pyloops, raw, sockperf
from pollnet.bench.handlers import Counter, Sink
from pollnet.bench.rows import ROW_KINDS
from pollnet.bench.sides import ClientSide, efvi_options, open_client
from pollnet.bench.spec import WorkerSpec


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
    side, spec, sim_server = open_client(spec, handler)
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
    side, spec, _sim_server = open_client(spec, handler)
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
    if spec.kind == "raw":
        return raw.send(spec)
    handler = Counter()
    streams = spec.streams
    side, spec, _sim_server = open_client(spec, handler, streams)
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
    side, spec, sim_server = open_client(spec, handler)
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
    kernel_before = _tcp_mem_pages()
    slab_before = _socket_slab_bytes()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    side, spec, _sim_server = open_client(spec, handler, streams)
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
