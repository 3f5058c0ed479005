"""Instructions per round trip through the Python API, counted by callgrind: client and
server in ONE thread (socket backend over loopback TCP, or efvi on the sim wire), so every
round trip takes the same polls and the count repeats run to run whatever the noise.
User-space instructions only (the kernel's share of a socket round trip is not counted).

    python benchmarks/callgrind_inprocess.py [ROW ...] [-n N]   # callgrind twice per row
    python benchmarks/callgrind_inprocess.py --loop socket N     # the loop itself

Rows: socket, efvi:sim (the efvitcp-level TcpClient/TcpServer), efvi-pollnet:sim (the
pollnet API on the sim link), tcpdirect (the pollnet API on the look-alike library,
built from native/tcpdirect_shim); default: all. POLLNET_PURE_PYTHON=1 measures the Python
per-message path instead of the compiled one (pollnet._pnfast): run both for before/after.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pollnet.bench.handlers import Counter, FastEcho

ROWS = ("socket", "efvi:sim", "efvi-pollnet:sim", "tcpdirect")


def _pollnet_pair(cfg: dict[str, Any], h: Any, e: Any) -> tuple[Any, Any, Any, Any, Any]:
    """A pollnet-API client and server from one config, connected."""
    from pollnet.config import config_from_dict
    from pollnet.factory import create_client, create_server

    srv = create_server(config_from_dict(cfg))
    cfg["client"]["server_port"] = srv.address[1]
    cli = create_client(config_from_dict(cfg))
    deadline = time.monotonic() + 5
    while cli.conn is None or not e.conns:
        cli.poll(h)
        srv.poll(e)
        assert time.monotonic() < deadline, "no connection"
    return cli.poll, srv.poll, cli.conn.write, h, e


def _shim() -> str:
    """The TCPDirect look-alike (native/tcpdirect_shim), built into native/build."""
    here = Path(__file__).resolve().parent.parent / "native" / "tcpdirect_shim"
    out = here.parent / "build" / "tcpdirect_shim"
    r = subprocess.run([str(here / "build.sh"), str(out)], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"building the TCPDirect look-alike failed:\n{r.stderr}")
    return str(out / "libzf_shim.so")


def pair(row: str) -> tuple[Any, Any, Any, Any, Any]:
    """(client poll, server poll, send, client handler, server handler), connected."""
    h, e = Counter(), FastEcho()
    local = {"server": {"listen_ip": "127.0.0.1", "port": 0},
             "client": {"server_ip": "127.0.0.1", "server_port": 0}}
    if row == "socket":
        return _pollnet_pair(local, h, e)
    if row == "efvi-pollnet:sim":
        return _pollnet_pair({"backend": "efvi", "efvi": {"link": "sim"}, **local}, h, e)
    if row == "tcpdirect":
        local["client"]["interface"] = local["server"]["interface"] = "lo"
        return _pollnet_pair({"backend": "tcpdirect", "tcpdirect": {"library": _shim()},
                              **local}, h, e)
    if row != "efvi:sim":
        raise SystemExit(f"unknown row {row!r}: one of {', '.join(ROWS)}")
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


Pair = tuple[Any, Any, Any, Any, Any]


def round_trips(p: Pair, n: int) -> None:
    """n ping-pongs of 64 B through a pair: send, poll both until the echo is back."""
    cpoll, spoll, send, h, e = p
    msg = bytes(64)
    for _ in range(n):
        h.got = 0
        send(msg)
        while h.got < 64:
            spoll(e)
            cpoll(h)


def loop(row: str, n: int) -> None:
    round_trips(pair(row), n)


def collected(row: str, n: int, out: Path) -> int:
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg.{n}",
           sys.executable, __file__, "--loop", row, str(n)]
    # A fixed string-hash seed: with a random one, dict probing (attribute lookups) differs
    # run to run and the count moves by a few hundred instructions per round trip.
    env = {**os.environ, "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED", "0")}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    m = re.search(r"Collected : (\d+)", r.stderr)
    if m is None:
        raise SystemExit(f"callgrind failed:\n{r.stderr[-2000:]}")
    return int(m.group(1))


def rows_and_count(args: list[str], n: int) -> tuple[list[str], int]:
    """`[ROW ...] [-n N]` -> (the rows, all of them by default; N)."""
    args = list(args)
    if "-n" in args:
        i = args.index("-n")
        n = int(args[i + 1])
        del args[i : i + 2]
    return args or list(ROWS), n


def path_name() -> str:
    """Which per-message path this process runs (POLLNET_PURE_PYTHON chooses)."""
    return "Python" if os.environ.get("POLLNET_PURE_PYTHON") else "compiled"


def main() -> None:
    if sys.argv[1:2] == ["--loop"]:
        loop(sys.argv[2], int(sys.argv[3]))
        return
    rows, n = rows_and_count(sys.argv[1:], 2000)
    for row in rows:
        with tempfile.TemporaryDirectory() as tmp:
            a = collected(row, n, Path(tmp))
            b = collected(row, 3 * n, Path(tmp))
        print(f"{row}: {(b - a) / (2 * n):,.0f} user-space instructions per round trip "
              f"(client + server, Python API, {path_name()} per-message path)", flush=True)


if __name__ == "__main__":
    main()
