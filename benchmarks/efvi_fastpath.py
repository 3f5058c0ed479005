"""A proposal for the efvi endpoint's poll() (pollnet/backends/efvi/endpoint.py, owned by
the efvi Python engineer), measured without touching it: `LeanPoll` is mixed into
TcpClient/TcpServer here.

Fast path: the same handler as last time, nothing left to resume, and a batch of exactly
one DATA event (every ping-pong message) or none (every idle poll) is handled inline;
anything else goes to the original poll()/_dispatch() unchanged.

    python benchmarks/efvi_fastpath.py            # instructions per round trip (callgrind)
    python benchmarks/efvi_fastpath.py --loop lean|asis N
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from typing import Any

from pollnet.backends.efvi import SimWire, TcpClient, TcpServer, _core
from pollnet.backends.efvi.endpoint import EVENT_BATCH, Endpoint, _remaining
from pollnet.bench.handlers import Counter, FastEcho
from pollnet.config import EfviOptions


class LeanPoll(Endpoint):
    def lean_setup(self) -> None:
        self._lp_poll: Any = self._lib.pn_poll
        self._lp_handler: object = None
        self._lp_on_data: Any = None
        self._lp_data = self._ev_codes[0]
        self._lp_offs = (self._ev_off[0], self._ev_off[1], self._ev_off[2],
                         self._ptr_off[1])
        self._lp_buffer = _core.ffi.buffer

    def poll(self, handler: object, now_ns: int | None = None) -> int:
        if handler is not self._lp_handler or self._resume < self._pending:
            n = Endpoint.poll(self, handler, now_ns)
            if self._stack is not None and self._bound is not None:
                self._lp_handler = handler
                self._lp_on_data = self._bound.on_data
            return n
        if now_ns is None:
            wire = self.wire
            now_ns = wire.now_ns if wire is not None else 0
        events = self._events
        n: int = self._lp_poll(self._stack, now_ns, events, EVENT_BATCH)
        if n == 0 and not self._accept_errors:
            return 0
        words = self._ev_words
        if n == 1 and words[0] == self._lp_data and not self._accept_errors:
            o_conn, o_len, o_rem, p_data = self._lp_offs
            conn = self._conns[words[o_conn]]
            on_data = self._lp_on_data
            if conn._closed or on_data is None:
                return 1
            size = words[o_len]
            view = memoryview(self._lp_buffer(self._ev_ptrs[p_data], size))
            self._pending, self._resume = 1, 0
            rem = on_data(conn, view)
            self._resume = 1
            view.release()
            if rem:
                words[o_rem] = _remaining(rem, size, conn, "on_data")
            return 1
        # Errors, several events, other kinds: the original code path.
        self._lp_handler = None
        if self._accept_errors:
            err = self._accept_errors.pop()
            self._accept_errors.clear()
            if n > 0:
                self._resume, self._pending = 0, n
            raise err
        if n < 0:
            raise _core.core_error(n, f"poll on {self._link.describe()}",
                                   self._link.last_error())
        bound = self._bound
        assert bound is not None
        self._dispatch(bound, 0, n)
        return n


class LeanClient(LeanPoll, TcpClient):
    pass


class LeanServer(LeanPoll, TcpServer):
    pass


def loop(variant: str, n: int) -> None:
    lean = variant == "lean"
    wire = SimWire(static_arp=True)
    server = (LeanServer if lean else TcpServer)(EfviOptions(), port=7001, wire=wire)
    client = (LeanClient if lean else TcpClient)(EfviOptions(), wire=wire)
    for ep in (server, client):
        if isinstance(ep, LeanPoll):
            ep.lean_setup()
    h, e = Counter(), FastEcho()
    conn = client.connect(server.local_ip, 7001)
    while not h.established:
        server.poll(e)
        client.poll(h)
    msg = bytes(64)
    send, spoll, cpoll = conn.send, server.poll, client.poll
    for _ in range(n):
        h.got = 0
        send(msg)
        while h.got < 64:
            spoll(e)
            cpoll(h)
    assert not h.lost


def collected(variant: str, n: int, out: str) -> int:
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg.{variant}.{n}",
           sys.executable, __file__, "--loop", variant, str(n)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    m = re.search(r"Collected : (\d+)", r.stderr)
    if m is None:
        raise SystemExit(f"callgrind failed:\n{r.stderr[-2000:]}")
    return int(m.group(1))


def main() -> None:
    if sys.argv[1:2] == ["--loop"]:
        loop(sys.argv[2], int(sys.argv[3]))
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    with tempfile.TemporaryDirectory() as tmp:
        for variant in ("asis", "lean"):
            a = collected(variant, n, tmp)
            b = collected(variant, 3 * n, tmp)
            print(f"efvi:sim poll {variant:4s}: {(b - a) / (2 * n):,.0f} instructions per "
                  "round trip (client + server, efvitcp API)")


if __name__ == "__main__":
    main()
