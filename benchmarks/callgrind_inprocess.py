"""Instructions per round trip through the Python API, counted by callgrind: client and
server in ONE thread (socket backend over loopback TCP, or efvi on the sim wire), so every
round trip takes the same polls and the count repeats run to run whatever the noise.
User-space instructions only (the kernel's share of a socket round trip is not counted).

    python benchmarks/callgrind_inprocess.py [socket|efvi:sim] [N]    # runs callgrind twice
    python benchmarks/callgrind_inprocess.py --loop socket N           # the loop itself
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pollnet.bench.handlers import Counter, FastEcho


def pair(row: str) -> tuple[Any, Any, Any, Any, Any]:
    """(client poll, server poll, send, client handler, server handler), connected."""
    h, e = Counter(), FastEcho()
    if row == "socket":
        from pollnet.config import config_from_dict
        from pollnet.factory import create_client, create_server

        srv = create_server(config_from_dict({"server": {"listen_ip": "127.0.0.1",
                                                         "port": 0}}))
        ip, port = srv.address
        cli = create_client(config_from_dict({"client": {"server_ip": ip,
                                                         "server_port": port}}))
        deadline = time.monotonic() + 5
        while cli.conn is None or not e.conns:
            cli.poll(h)
            srv.poll(e)
            assert time.monotonic() < deadline, "no connection"
        return cli.poll, srv.poll, cli.conn.write, h, e
    from pollnet.backends.efvi import SimWire, TcpClient, TcpServer
    from pollnet.config import EfviOptions

    wire = SimWire(static_arp=True)
    server = TcpServer(EfviOptions(), port=7001, wire=wire)
    client = TcpClient(EfviOptions(), wire=wire)
    conn = client.connect(server.local_ip, 7001)
    while not h.established:
        server.poll(e)
        client.poll(h)
    return client.poll, server.poll, conn.send, h, e


def loop(row: str, n: int) -> None:
    cpoll, spoll, send, h, e = pair(row)
    msg = bytes(64)
    for _ in range(n):
        h.got = 0
        send(msg)
        while h.got < 64:
            spoll(e)
            cpoll(h)


def collected(row: str, n: int, out: Path) -> int:
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg.{n}",
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
    row = sys.argv[1] if len(sys.argv) > 1 else "socket"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    with tempfile.TemporaryDirectory() as tmp:
        a = collected(row, n, Path(tmp))
        b = collected(row, 3 * n, Path(tmp))
    print(f"{row}: {(b - a) / (2 * n):,.0f} user-space instructions per round trip "
          "(client + server, Python API)")


if __name__ == "__main__":
    main()
