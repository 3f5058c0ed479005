"""1 against 2 shards (issue 16, docs/sharding.md): `pollnet echo-server --shards N` on
af_xdp (or af_packet) in namespace a, on a veth with N queues, and kernel clients in
namespace b (tests/netns/netns.py's Pair, offloads off as in tests/netns/test_shards.py).

    python benchmarks/shards.py [--link af_xdp] [-t 3] [--runs 3] [--conns 32] [--streams 8]

Two loads, one after the other, against the same servers, from benchmarks/native/connload
(kernel sockets, epoll, one thread):
  * connections per second: --conns connections at a time, each connecting, sending
    64 B, reading them back and closing (with a reset: no TIME_WAIT), then replaced;
  * aggregate MB/s echoed: --streams connections, each writing 64 KB chunks (at most
    256 KB ahead of what came back) and reading the echo.
Each shard busy-polls one CPU (shard i on CPU i); the clients run where the scheduler puts
them. On this 2-core machine 2 shards leave the clients (and the kernel's side of the
veth) no CPU of their own: the figures show what this host does, not what N queues on N
free cores would. Needs root.
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
CONNLOAD = ROOT / "benchmarks" / "native" / "build" / "connload"


def connload() -> str:
    """benchmarks/native/connload (C, so the clients are not the limit), built if needed."""
    subprocess.run(["make", "-s", "-C", str(CONNLOAD.parents[1]), "build/connload"],
                   check=True)
    return str(CONNLOAD)


def one_run(shards: int, link: str, secs: float, conns: int, streams: int, tmp: Path,
            load: str) -> dict[str, float]:
    t = Pair(offload=False, queues=shards)
    try:
        ours = t.free_ip(3)
        config = tmp / "shards.toml"
        config.write_text(
            f'backend = "efvi"\n[efvi]\nlink = "{link}"\ninterface = "pn0"\n'
            f'local_ip = "{ours}"\nmax_conn_cnt = 4096\n'
            f'[server]\nlisten_ip = "{ours}"\nport = {PORT}\nmax_conns = 4096\n')
        args = ["--shards", str(shards)] if shards > 1 else ["--cpu", "0"]
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
            r = t.b.run([load, ours, str(PORT), mode, str(secs), str(par)],
                        timeout=secs + 60)
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
    load = connload()
    tmp = Path("/tmp/pollnet-shards-bench")
    tmp.mkdir(exist_ok=True)
    print(f"{a.link}, {a.seconds:g} s a load; conns/s with {a.conns} at a time, MB/s echoed "
          f"with {a.streams} streams")
    print(f"{'run':>3} {'shards':>6} {'conns/s':>9} {'MB/s':>8}  connections per shard, failed")
    for run in range(1, a.runs + 1):
        for shards in (1, 2):
            r = one_run(shards, a.link, a.seconds, a.conns, a.streams, tmp, load)
            print(f"{run:>3} {shards:>6} {r['conns_per_s']:>9.0f} {r['mb_per_s']:>8.1f}  "
                  f"{r['split']}, {int(r['conn_failed'] + r['bulk_failed'])}", flush=True)


if __name__ == "__main__":
    main()
