"""What pollnet's Python layer adds on the tcpdirect backend: the same one-process ping-pong
(a server stack and a client stack polled in turn, 64 B round trips) from C over the
TCPDirect API (native/tests/tools/td_pingpong.c) and through pollnet, on the compiled
per-message path and on the Python one (POLLNET_PURE_PYTHON=1), each in a fresh process.

    python benchmarks/tcpdirect_overhead.py [-n COUNT] [--library PATH]

Without --library it runs on the look-alike (kernel sockets on loopback underneath). With
the real libonload_zf.so it runs in TCPDirect's emulator (b2b0/b2b1, 2 MB huge pages, as
root), the layout tests/tcpdirect uses. Prints p50 per row and the overhead over C.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the tests' packages import from there

from tcpdirect.shim import SHIM_DIR, build_shim  # noqa: E402

PYTHON_LOOP = """
import sys, time
import pollnet
from pollnet.config import config_from_dict
library, sif, sip, cif, cip, port, count = sys.argv[1:8]
cfg = config_from_dict({
    "backend": "tcpdirect", "tcpdirect": {"library": library},
    "server": {"interface": sif, "listen_ip": sip, "port": int(port)},
    "client": {"interface": cif, "local_ip": cip, "server_ip": sip, "server_port": int(port),
               "conn_retry_sec": 0},
})
class Echo:
    def on_tcp_data(self, conn, data):
        conn.write(data)
        return 0
class Ping:
    got = 0
    def on_tcp_connected(self, conn):
        pass
    def on_tcp_data(self, conn, data):
        self.got += len(data)
        return 0
server, client = pollnet.create_server(cfg), pollnet.create_client(cfg)
echo, ping = Echo(), Ping()
end = time.monotonic() + 5
while not client.is_connected or server.conn_count == 0:
    client.poll(ping); server.poll(echo)
    assert time.monotonic() < end, "not connected in 5 s: " + client.last_error
msg = b"x" * 64
rtt = []
clock = time.perf_counter_ns
for _ in range(int(count)):
    t0 = clock()
    want = ping.got + 64
    client.write(msg)
    while ping.got < want:
        server.poll(echo); client.poll(ping)
    rtt.append(clock() - t0)
rtt.sort()
print(f"rtt_ns p50={rtt[len(rtt) // 2]} p99={rtt[len(rtt) * 99 // 100]} "
      f"mean={sum(rtt) // len(rtt)} count={len(rtt)}")
"""


def _p50(out: str) -> int:
    m = re.search(r"p50=(\d+)", out)
    if not m:
        raise SystemExit(f"no result in: {out}")
    return int(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--count", type=int, default=20000)
    ap.add_argument("--library", help="a real libonload_zf.so (default: the look-alike)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="td_overhead_"))
    exe = tmp / "td_pingpong"
    subprocess.run(["cc", "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror",
                    f"-I{SHIM_DIR / 'include'}", str(ROOT / "native/tests/tools/td_pingpong.c"),
                    "-ldl", "-o", str(exe)], check=True)
    env = dict(os.environ)
    if args.library:
        library = args.library
        layout = ["b2b0", "127.0.0.4", "b2b1", "127.0.0.3"]
        env["ZF_ATTR"] = f"emu=1;interface=lo2;n_bufs=1024;emu_shmname=pnb{os.getpid()}"
    else:
        library = str(build_shim(tmp))
        layout = ["lo", "127.0.0.1", "lo", "127.0.0.1"]
    rows: list[tuple[str, int]] = []
    for name, cmd, extra in [
        ("C over the TCPDirect API", [str(exe), library, *layout], {}),
        ("pollnet, compiled path", [sys.executable, "-c", PYTHON_LOOP, library, *layout], {}),
        ("pollnet, Python path", [sys.executable, "-c", PYTHON_LOOP, library, *layout],
         {"POLLNET_PURE_PYTHON": "1"}),
    ]:
        argv = [*cmd, str(34000 + len(rows)), str(args.count)]
        if cmd[0] == str(exe):
            argv.append("64")  # the message size (the Python loop's is fixed)
        done = subprocess.run(argv, env={**env, **extra, "PYTHONPATH": str(ROOT)},
                              capture_output=True, text=True, timeout=600)
        for leftover in Path("/dev/shm").glob("zf_emu_*"):
            leftover.unlink(missing_ok=True)
        if done.returncode != 0:
            raise SystemExit(f"{name}: {done.stdout}{done.stderr}")
        rows.append((name, _p50(done.stdout)))
        print(f"{name:28} {done.stdout.strip()}")
    c = rows[0][1]
    fast, slow = rows[1][1] - c, rows[2][1] - c
    shrink = f"{slow / fast:.2f}x less" if fast > 0 else "none left to measure"
    print(f"overhead over C, p50: compiled {fast} ns, Python {slow} ns (compiled: {shrink})")


if __name__ == "__main__":
    main()
