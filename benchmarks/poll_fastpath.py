"""Measures the efvi endpoint's idle poll() (a connected, silent connection on the sim
link) against `pn_poll` through cffi and in C: ns per call, best of 5 runs of N calls of
CPU time, pinned to one CPU. (benchmarks/efvi_fastpath.py counts the instructions of its
data paths.)

    python benchmarks/poll_fastpath.py [N]
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import time
from collections.abc import Callable

from pollnet.backends.efvi import SimWire, TcpClient, TcpServer
from pollnet.backends.efvi.core import binding as _core
from pollnet.backends.efvi.efvitcp.endpoint import EVENT_BATCH
from pollnet.bench.handlers import Counter, FastEcho
from pollnet.config import EfviOptions


def best_ns(fn: Callable[..., object], args: tuple[object, ...], n: int) -> float:
    gc.disable()
    best = float("inf")
    for _ in range(5):
        t0 = time.thread_time_ns()  # CPU time: other processes' turns do not count
        for _ in range(n):
            fn(*args)
        best = min(best, (time.thread_time_ns() - t0) / n)
    gc.enable()
    return best


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 300_000
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    wire = SimWire(static_arp=True)
    srv = TcpServer(EfviOptions(), port=7001, wire=wire)
    e = FastEcho()
    h = Counter()
    cli = TcpClient(EfviOptions(), wire=wire)
    cli.connect(srv.local_ip, 7001)
    for _ in range(100):
        srv.poll(e)
        cli.poll(h)
    assert h.established == 1
    lib = _core.lib
    rows = {
        "TcpClient.poll": best_ns(cli.poll, (h,), n),
        "lib.pn_poll through cffi": best_ns(lib.pn_poll, (cli._stack, wire.now_ns,
                                                          cli._events, EVENT_BATCH), n),
        "pn_poll in C (pn_bench_idle_poll)": best_ns(
            lambda: lib.pn_bench_idle_poll(cli._stack, n, wire.now_ns), (), 1) / n,
        "an empty Python call": best_ns(lambda: None, (), n),
    }
    for name, ns in rows.items():
        print(f"{name:36s} {ns:8.1f} ns")


if __name__ == "__main__":
    main()
