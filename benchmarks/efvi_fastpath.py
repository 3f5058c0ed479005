"""Instructions per message through the efvi endpoint's real poll() (callgrind), on its two
dispatch paths: client and server in ONE thread on the sim wire, efvitcp-level API.

    one   one connection ping-pong: every batch is one DATA event, which poll() dispatches
          inline (its one-event path)
    two   two connections ping-pong in lockstep: every batch holds two DATA events, which
          go through the dispatch loop (Endpoint._dispatch); counted per message

    python benchmarks/efvi_fastpath.py [N]              # both rows, callgrind twice each
    python benchmarks/efvi_fastpath.py --loop one|two N # the loop itself
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile

from pollnet.backends.efvi import SimWire, TcpClient, TcpServer
from pollnet.bench.handlers import Counter, FastEcho
from pollnet.config import EfviOptions

CONNS = {"one": 1, "two": 2}


def loop(row: str, n: int) -> None:
    k = CONNS[row]
    wire = SimWire(static_arp=True)
    server = TcpServer(EfviOptions(), port=7001, wire=wire)
    client = TcpClient(EfviOptions(), wire=wire, max_conns=k)
    h, e = Counter(), FastEcho()
    conns = [client.connect(server.local_ip, 7001) for _ in range(k)]
    while h.established < k:
        server.poll(e)
        client.poll(h)
    msg = bytes(64)
    sends = [c.send for c in conns]
    spoll, cpoll = server.poll, client.poll
    want = 64 * k
    for _ in range(n):
        h.got = 0
        for send in sends:
            send(msg)
        while h.got < want:
            spoll(e)
            cpoll(h)
    assert not h.lost


def collected(row: str, n: int, out: str) -> int:
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg.{row}.{n}",
           sys.executable, __file__, "--loop", row, str(n)]
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
        for row, k in CONNS.items():
            a = collected(row, n, tmp)
            b = collected(row, 3 * n, tmp)
            print(f"efvi:sim {row} DATA event(s) per poll: {(b - a) / (2 * n * k):,.0f} "
                  "instructions per message round trip (client + server, efvitcp API)")


if __name__ == "__main__":
    main()
