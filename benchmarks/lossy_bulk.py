"""One stream through the impairment bridge (tools/impair_bridge.py) at a given random
loss: the kernel's TCP sender against ours, each into the same kernel receiver, in the
same namespaces (tests/netns/netns.py's Bridged: a <-> br <-> b, offloads off).

    python benchmarks/lossy_bulk.py [--loss 0.01] [-t 4] [--link af_packet]
                                    [--efvi '{"sack": false}'] [--runs 3]
                                    [--kernel-cc reno] [--kernel-sysctl net.ipv4.tcp_sack=0]

Ours is a pollnet client (backend efvi, the pollnet level's defaults unless --efvi says
otherwise) writing 64 KB as fast as it is taken. Prints MB/s for each (as the receiver
counted them, from its first byte), our stack's loss counters, and the ratio. The bridge
is a Python process: with no loss it carries about 225 MB/s, so this measures recovery,
not capacity. Needs root (network namespaces).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the tests' packages import from there

from netns.netns import Bridged  # noqa: E402

PORT = 5001
RECEIVER = """
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); print("ready", flush=True)
c, _ = s.accept(); n = 0; t0 = None
while (b := c.recv(1 << 20)):
    t0 = t0 or time.monotonic()
    n += len(b)
print(n, time.monotonic() - t0, flush=True)
"""
KERNEL_SENDER = """
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2]))); buf = bytes(65536)
end = time.monotonic() + float(sys.argv[3])
while time.monotonic() < end:
    s.sendall(buf)
s.close()
"""
COUNTERS = ("TcpRetransSegs", "TcpExtTCPFastRetrans", "TcpExtTCPSackRecovery",
            "TcpExtTCPLossProbes", "TcpExtTCPTimeouts")


KERNEL_SYSCTLS: list[str] = []  # for the kernel's sender: --kernel-cc, --kernel-sysctl


def kernel_sender(t: Bridged, secs: float, link: str, efvi: dict[str, Any]) -> dict[str, int]:
    for setting in KERNEL_SYSCTLS:  # namespace b's own TCP settings
        t.b.run(["sysctl", "-q", "-w", setting])
    t.b.python(KERNEL_SENDER, t.pa.ip, str(PORT), str(secs)).wait(secs + 60)
    return {}


def our_sender(t: Bridged, secs: float, link: str, efvi: dict[str, Any]) -> dict[str, int]:
    import pollnet
    from pollnet.config import config_from_dict
    from pollnet.testing import RecordingHandler, poll_until

    cfg = config_from_dict({
        "backend": "efvi",
        "efvi": {"link": link, "interface": "pn0", "local_ip": t.free_ip(4), **efvi},
        "client": {"server_ip": t.pa.ip, "server_port": PORT,
                   "interface": f"{t.b.name}/pn0", "conn_retry_sec": 0},
    })
    client = pollnet.create_client(cfg)
    h = RecordingHandler()
    try:
        assert poll_until(lambda: bool(h.connected), (client, h)), "could not connect"
        conn, buf = h.connected[0], bytes(65536)
        end = time.monotonic() + secs
        while time.monotonic() < end:
            conn.write_some(buf)
            client.poll(h)
        conn.close("done")
        end = time.monotonic() + 2  # the FIN and the last retransmissions
        while time.monotonic() < end:
            client.poll(h)
        stats = client.stats()  # type: ignore[attr-defined]
        return {k: int(stats.get(k, 0)) for k in COUNTERS}
    finally:
        client.close()


def measure(sender: Any, loss: float, secs: float, link: str,
            efvi: dict[str, Any]) -> tuple[float, dict[str, int]]:
    with Bridged(loss=loss, seed=3, duration=secs + 60) as t:
        rx = t.a.python(RECEIVER, t.pa.ip, str(PORT), stdout=subprocess.PIPE, text=True)
        assert rx.stdout is not None and rx.stdout.readline().startswith("ready")
        counters = sender(t, secs, link, efvi)
        n, took = rx.stdout.readline().split()
        return int(n) / float(took) / 1e6, counters


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loss", type=float, default=0.01)
    ap.add_argument("-t", "--seconds", type=float, default=4.0)
    ap.add_argument("--link", default="af_packet", choices=["af_packet", "af_xdp"])
    ap.add_argument("--efvi", default="{}", help="[efvi] knobs for ours, as JSON")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--kernel-cc", default=None,
                    help="the kernel sender's congestion control (default: the system's, "
                    "cubic); reno is the one RFC 5681 describes, as ours")
    ap.add_argument("--kernel-sysctl", action="append", default=[],
                    help="a sysctl for the kernel sender's namespace, e.g. "
                    "net.ipv4.tcp_recovery=0 (repeatable)")
    a = ap.parse_args()
    efvi = json.loads(a.efvi)
    KERNEL_SYSCTLS.extend(a.kernel_sysctl)
    if a.kernel_cc:
        KERNEL_SYSCTLS.append(f"net.ipv4.tcp_congestion_control={a.kernel_cc}")
    for run in range(1, a.runs + 1):
        kernel, _ = measure(kernel_sender, a.loss, a.seconds, a.link, efvi)
        ours, counters = measure(our_sender, a.loss, a.seconds, a.link, efvi)
        who = f"kernel ({a.kernel_cc})" if a.kernel_cc else "kernel"
        print(f"run {run}, {a.loss:.1%} loss: {who} {kernel:.1f} MB/s, ours ({a.link}) "
              f"{ours:.1f} MB/s = {ours / kernel:.2f}x; {counters}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
