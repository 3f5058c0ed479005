"""Measures the efvi endpoint's poll() against a leaner variant (a proposal for
pollnet/backends/efvi/endpoint.py, which the efvi Python engineer owns): idle poll on the
sim link, ns per call, best of 5 runs of N calls, pinned to one CPU.

    python benchmarks/poll_fastpath.py [N]
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from pollnet.backends.efvi import SimWire, TcpClient, TcpServer, _core
from pollnet.backends.efvi.endpoint import EVENT_BATCH
from pollnet.bench.handlers import Counter, FastEcho
from pollnet.config import EfviOptions


class LeanClient(TcpClient):
    """poll() with one branch on the fast path: same handler, nothing left to resume,
    stack open. Everything else goes to the original poll()."""

    def lean_setup(self) -> None:
        self._pn_poll: Any = self._lib.pn_poll
        self._fast_handler: object = None

    def poll(self, handler: object, now_ns: int | None = None) -> int:
        if handler is not self._fast_handler or self._resume < self._pending:
            n = super().poll(handler, now_ns)
            self._fast_handler = handler if self._stack is not None else None
            return n
        if now_ns is None:
            wire = self.wire
            now_ns = wire.now_ns if wire is not None else 0
        n: int = self._pn_poll(self._stack, now_ns, self._events, EVENT_BATCH)
        if n > 0 and not self._accept_errors:
            bound = self._bound
            assert bound is not None
            self._dispatch(bound, 0, n)
            return n
        if n or self._accept_errors:
            self._fast_handler = None
            self._resume = self._pending = 0
            raise RuntimeError("slow path: rerun poll()")  # not reached in this bench
        return n


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
    cli = LeanClient(EfviOptions(), wire=wire)
    cli.lean_setup()
    from efvi_fastpath import LeanClient as OneEventClient

    cli2 = OneEventClient(EfviOptions(), wire=wire)
    cli2.lean_setup()
    h, e = Counter(), FastEcho()
    cli.connect(srv.local_ip, 7001)
    for _ in range(100):
        srv.poll(e)
        TcpClient.poll(cli, h)
    assert h.established == 1
    h0 = Counter()
    cli0 = TcpClient(EfviOptions(), wire=wire)
    cli0.connect(srv.local_ip, 7001)
    for _ in range(100):
        srv.poll(e)
        cli0.poll(h0)
    assert h0.established == 1
    h2 = Counter()
    cli2.connect(srv.local_ip, 7001)
    for _ in range(100):
        srv.poll(e)
        TcpClient.poll(cli2, h2)
        cli2.poll(h2)
    assert h2.established == 1
    lib = _core.lib
    rows = {
        "TcpClient.poll (as is)": best_ns(cli0.poll, (h0,), n),
        "lean poll (proposal)": best_ns(cli.poll, (h,), n),
        "one-event fast path (efvi_fastpath.py)": best_ns(cli2.poll, (h2,), n),
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
