"""1 against 2 shards (issue 16, docs/sharding.md): `pollnet echo-server --shards N` on
af_xdp (or af_packet) in namespace a, on a veth with N queues, and kernel clients in
namespace b (tests/netns/netns.py's Pair, offloads off as in tests/netns/test_shards.py).

    python benchmarks/shards.py [--link af_xdp] [-t 3] [--runs 3] [--conns 32] [--streams 8]

Two loads, one after the other, against the same servers:
  * connections per second: --conns connections at a time, each connecting, sending
    64 B, reading them back and closing, then replaced;
  * aggregate MB/s echoed: --streams connections, each writing 64 KB chunks (at most
    256 KB ahead of what came back) and reading the echo.
The clients are one Python process (selectors, non-blocking kernel sockets). On a 2-core
machine each shard busy-polls a core and the clients share them: the figures show what
this host does, not what N queues on N free cores would. Needs root.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the tests' packages import from there

from netns.netns import Pair  # noqa: E402

PORT = 7001
LOAD = r"""
import json, selectors, socket, sys, time
ip, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
secs, par = float(sys.argv[4]), int(sys.argv[5])
sel = selectors.DefaultSelector()
ping, chunk = b"x" * 64, bytes(65536)
done = moved = failed = 0
state = {}

def start():
    s = socket.socket(); s.setblocking(False)
    s.connect_ex((ip, port))
    state[s] = [0, 0]  # [sent, received]
    both = selectors.EVENT_READ | selectors.EVENT_WRITE
    sel.register(s, selectors.EVENT_WRITE if mode == "conn" else both)

for _ in range(par):
    start()
end = time.monotonic() + secs
while time.monotonic() < end:
    for key, ev in sel.select(timeout=1):
        s = key.fileobj; st = state[s]
        try:
            if mode == "conn":
                if ev & selectors.EVENT_WRITE:
                    s.send(ping); sel.modify(s, selectors.EVENT_READ)
                else:
                    st[1] += len(s.recv(4096))
                    if st[1] >= 64:
                        done += 1; sel.unregister(s); s.close(); del state[s]; start()
            else:
                if ev & selectors.EVENT_READ:
                    n = len(s.recv(1 << 18)); st[1] += n; moved += n
                if ev & selectors.EVENT_WRITE and st[0] - st[1] < (1 << 18):
                    st[0] += s.send(chunk)
        except OSError:
            failed += 1; sel.unregister(s); s.close(); del state[s]; start()
said = {"conns_per_s": done / secs, "mb_per_s": moved / secs / 1e6, "failed": failed}
print(json.dumps(said), flush=True)
"""


def one_run(shards: int, link: str, secs: float, conns: int, streams: int,
            tmp: Path) -> dict[str, float]:
    t = Pair(offload=False, queues=shards)
    try:
        ours = t.free_ip(3)
        config = tmp / "shards.toml"
        config.write_text(
            f'backend = "efvi"\n[efvi]\nlink = "{link}"\ninterface = "pn0"\n'
            f'local_ip = "{ours}"\nmax_conn_cnt = 4096\n'
            f'[server]\nlisten_ip = "{ours}"\nport = {PORT}\nmax_conns = 4096\n')
        args = ["--shards", str(shards)] if shards > 1 else []
        server = t.a.popen([sys.executable, "-m", "pollnet", "echo-server", "--config",
                            str(config), *args], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
        assert server.stdout is not None
        for _ in range(shards):
            line = server.stdout.readline()
            if "listening on" not in line:
                raise SystemExit(f"echo-server did not start: {line}{server.communicate()[1]}")
        out: dict[str, float] = {}
        for mode, par in (("conn", conns), ("bulk", streams)):
            r = t.b.run([sys.executable, "-c", LOAD, ours, str(PORT), mode, str(secs),
                         str(par)], timeout=secs + 60)
            said = json.loads(r.stdout.strip().splitlines()[-1])
            out["conns_per_s" if mode == "conn" else "mb_per_s"] = said[
                "conns_per_s" if mode == "conn" else "mb_per_s"]
            out[f"{mode}_failed"] = said["failed"]
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=20)
        counts = [int(n) for n in re.findall(r"(\d+) connection", err)]
        out["split"] = counts  # type: ignore[assignment]
        return out
    finally:
        t.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--link", default="af_xdp", choices=("af_xdp", "af_packet"))
    ap.add_argument("-t", "--seconds", type=float, default=3.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--streams", type=int, default=8)
    a = ap.parse_args()
    tmp = Path("/tmp/pollnet-shards-bench")
    tmp.mkdir(exist_ok=True)
    print(f"{a.link}, {a.seconds:g} s a load; conns/s with {a.conns} at a time, MB/s echoed "
          f"with {a.streams} streams")
    print(f"{'run':>3} {'shards':>6} {'conns/s':>9} {'MB/s':>8}  connections per shard, failed")
    for run in range(1, a.runs + 1):
        for shards in (1, 2):
            r = one_run(shards, a.link, a.seconds, a.conns, a.streams, tmp)
            print(f"{run:>3} {shards:>6} {r['conns_per_s']:>9.0f} {r['mb_per_s']:>8.1f}  "
                  f"{r['split']}, {int(r['conn_failed'] + r['bulk_failed'])}", flush=True)


if __name__ == "__main__":
    main()
