"""pollnet.tools against the kernel, in private namespaces (root):
a kernel-to-kernel TCP transfer captured with tcpdump and rebuilt by TcpStream (SHA-256 of
each direction), UDP multicast joined across a veth, and the Ethernet-frame receivers
(AF_PACKET socket, and a pollnet link's rx_burst)."""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pollnet.tools import TcpStreams

from .conftest import require_netns
from .netns import Pair

pytestmark = pytest.mark.netns

PORT = 6100

SERVER = """
import socket, sys
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((sys.argv[1], int(sys.argv[2]))); ls.listen(1)
print("ready", flush=True)
ls.settimeout(30)
c, _ = ls.accept(); c.settimeout(30)
n = 0
while True:
    d = c.recv(65536)
    if not d:
        break
    n += len(d)
reply = bytes((i * 7 + 3) & 255 for i in range(int(sys.argv[3])))
c.sendall(reply)
c.close()
print(n, flush=True)
"""

CLIENT = """
import random, socket, sys
data = random.Random(int(sys.argv[4])).randbytes(int(sys.argv[3]))
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
c.sendall(data); c.shutdown(socket.SHUT_WR)
n = 0
while True:
    d = c.recv(65536)
    if not d:
        break
    n += len(d)
print(n, flush=True)
"""


def _tcpdump(t: Pair, out: Path, expr: list[str]) -> subprocess.Popen[str]:
    if shutil.which("tcpdump") is None:
        pytest.skip("no tcpdump (apt-get install tcpdump)")
    # A large capture buffer (-B, KiB) so no frame of a fast transfer is dropped, and
    # immediate mode so none is still waiting in a half-filled ring block when it stops.
    p = t.a.popen(["tcpdump", "-i", t.pa.ifname, "-B", "65536", "--immediate-mode", "-U", "-n",
                   "-s", "0", "-w", str(out), *expr],
                  stderr=subprocess.PIPE, text=True)
    assert p.stderr is not None
    line = p.stderr.readline()  # "tcpdump: listening on ..."
    assert "listening" in line, line
    return p


def _stop(p: subprocess.Popen[str]) -> str:
    """Stop tcpdump; its closing report ("N packets dropped by kernel")."""
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=10)
    return err


def dropped(report: str) -> int:
    m = re.search(r"(\d+) packets? dropped by kernel", report)
    return int(m.group(1)) if m else 0


@pytest.mark.parametrize("offload", [True, False], ids=["offloads-on", "offloads-off"])
def test_tcpstream_rebuilds_a_kernel_transfer(tmp_path: Path, offload: bool) -> None:
    """With offloads on, tcpdump sees TSO/GRO super-segments; TcpStream does not care."""
    require_netns()
    up_n, down_n = 1_500_000, 400_000
    with Pair(offload=offload) as t:
        pcap = tmp_path / "k2k.pcap"
        dump = _tcpdump(t, pcap, ["tcp", "port", str(PORT)])
        srv = t.b.python(SERVER, t.pb.ip, str(PORT), str(down_n), stdout=subprocess.PIPE,
                         text=True)
        assert srv.stdout is not None and srv.stdout.readline().strip() == "ready"
        r = t.a.run([sys.executable, "-c", CLIENT, t.pb.ip, str(PORT), str(up_n), "9"])
        assert int(r.stdout.strip()) == down_n
        assert int(srv.communicate(timeout=30)[0].strip()) == up_n
        time.sleep(0.2)
        dump_err = _stop(dump)
    (conn,) = TcpStreams.from_pcap(pcap).find(PORT)
    up = random.Random(9).randbytes(up_n)
    down = bytes((i * 7 + 3) & 255 for i in range(down_n))
    assert dropped(dump_err) == 0, dump_err
    assert conn.server == (t.pb.ip, PORT) and conn.syn_seen and conn.closed
    c2s, s2c = conn.client_to_server, conn.server_to_client
    assert hashlib.sha256(c2s.data).hexdigest() == hashlib.sha256(up).hexdigest()
    assert hashlib.sha256(s2c.data).hexdigest() == hashlib.sha256(down).hexdigest()
    assert c2s.complete and s2c.complete and c2s.holes == [] and s2c.holes == []


MCAST_RX = """
import json, sys, time
from pollnet.tools.udp import UdpReceiver
rx = UdpReceiver(int(sys.argv[2]), group=sys.argv[1], iface_ip=sys.argv[3])
print("ready", flush=True)
got = []
deadline = time.monotonic() + 10
while len(got) < int(sys.argv[4]) and time.monotonic() < deadline:
    rx.recv(lambda d, s: got.append((bytes(d).decode(), s[0])))
print(json.dumps(got), flush=True)
"""

MCAST_TX = """
import sys, time
from pollnet.tools.udp import UdpSender
tx = UdpSender(sys.argv[1], int(sys.argv[2]), iface_ip=sys.argv[3])
for i in range(int(sys.argv[4])):
    while not tx.write(f"m{i}".encode()):
        pass
    time.sleep(0.002)
"""


def test_udp_multicast_join_across_a_veth(netns_pair_plain: Pair) -> None:
    t = netns_pair_plain
    group, port, n = "239.7.7.7", 6200, 50
    rx = t.a.python(MCAST_RX, group, str(port), t.pa.ip, str(n), stdout=subprocess.PIPE,
                    text=True)
    assert rx.stdout is not None and rx.stdout.readline().strip() == "ready"
    t.b.run([sys.executable, "-c", MCAST_TX, group, str(port), t.pb.ip, str(n)])
    got = json.loads(rx.communicate(timeout=20)[0].strip().splitlines()[-1])
    assert [m for m, _ in got] == [f"m{i}" for i in range(n)]
    assert {src for _, src in got} == {t.pb.ip}


FRAMES_RX = """
import json, sys, time
from pollnet.tools.frames import FrameReceiver
from pollnet.tools.packets import parse_frame
rx = FrameReceiver(sys.argv[1], outgoing=False, pcap=sys.argv[2])
print("ready", flush=True)
seen = []
deadline = time.monotonic() + 10
def on(frame, ts):
    p = parse_frame(bytes(frame))
    if p is not None and p.is_udp and p.dst_port == 6300:
        seen.append([p.payload.decode(), ts > 0])
while len(seen) < 20 and time.monotonic() < deadline:
    rx.recv(on)
rx.close()
print(json.dumps(seen), flush=True)
"""

UDP_TX = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[3])):
    s.sendto(f"f{i}".encode(), (sys.argv[1], int(sys.argv[2])))
    time.sleep(0.002)
"""


def test_frame_receiver_on_an_interface(netns_pair_plain: Pair, tmp_path: Path) -> None:
    t = netns_pair_plain
    pcap = tmp_path / "frames.pcap"
    rx = t.a.python(FRAMES_RX, t.pa.ifname, str(pcap), stdout=subprocess.PIPE, text=True)
    assert rx.stdout is not None and rx.stdout.readline().strip() == "ready"
    t.b.run([sys.executable, "-c", UDP_TX, t.pa.ip, "6300", "20"])
    seen = json.loads(rx.communicate(timeout=20)[0].strip().splitlines()[-1])
    assert [m for m, _ in seen] == [f"f{i}" for i in range(20)] and all(ts for _, ts in seen)
    from pollnet.tools.pcap import read_pcap

    assert len(read_pcap(pcap)) >= 20


LINK_RX = """
import json, sys, time
from pollnet.tools.frames import LinkFrameReceiver
rx = LinkFrameReceiver.open(sys.argv[1], sys.argv[2], udp_port=6300)
print("ready", flush=True)
seen = []
deadline = time.monotonic() + 10
while len(seen) < 20 and time.monotonic() < deadline:
    rx.recv(lambda f, ts: seen.append(bytes(f)[42:].decode()))
rx.close()
print(json.dumps(seen), flush=True)
"""


@pytest.mark.parametrize("kind", ["af_packet"])
def test_link_frame_receiver(netns_pair_plain: Pair, kind: str) -> None:
    """Frames through a pollnet link's own rx_burst (the compiled core's af_packet link)."""
    from pollnet.backends.efvi.core import binding as _core

    if not _core.available():
        pytest.skip(f"{_core.LOAD_ERROR}; build the C core with `pip install -e .`")
    t = netns_pair_plain
    rx = t.a.python(LINK_RX, kind, t.pa.ifname, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    text=True)
    assert rx.stdout is not None
    first = rx.stdout.readline().strip()
    if first != "ready":
        err = rx.communicate(timeout=10)[1]
        pytest.fail(f"link receiver did not start: {first} {err}")
    t.b.run([sys.executable, "-c", UDP_TX, t.pa.ip, "6300", "20"])
    seen = json.loads(rx.communicate(timeout=20)[0].strip().splitlines()[-1])
    assert seen == [f"f{i}" for i in range(20)]


LINK_UDP = """
import json, sys, time
from pollnet.tools.frames import LinkFrameReceiver
from pollnet.tools.udp import LinkUdpReceiver, LinkUdpSender
link = LinkFrameReceiver.open("af_packet", sys.argv[1])
a_ip, b_ip, b_mac, group = sys.argv[2], sys.argv[3], bytes.fromhex(sys.argv[4]), sys.argv[5]
rx = LinkUdpReceiver(link.link, 6601, ip=a_ip)
print("ready", flush=True)
got = []
deadline = time.monotonic() + 10
while len(got) < 10 and time.monotonic() < deadline:
    rx.recv(lambda d, s: got.append([bytes(d).decode(), s[0]]))
uni = LinkUdpSender(link.link, (a_ip, 7001), (b_ip, 6602), dst_mac=b_mac)
multi = LinkUdpSender(link.link, (a_ip, 7002), (group, 6603))
for i in range(10):
    while not uni.write(b"to-b%d" % i):
        pass
    while not multi.write(b"to-g%d" % i):
        pass
    time.sleep(0.002)
rx.close(); link.close()
print(json.dumps(got), flush=True)
"""

KERNEL_UDP_RX = """
import json, sys, time
from pollnet.tools.udp import UdpReceiver
u = UdpReceiver(6602, bind_ip=sys.argv[1])
g = UdpReceiver(6603, group=sys.argv[2], iface_ip=sys.argv[1])
print("ready", flush=True)
got = []
deadline = time.monotonic() + 15
while len(got) < 20 and time.monotonic() < deadline:
    u.recv(lambda d, s: got.append(bytes(d).decode()))
    g.recv(lambda d, s: got.append(bytes(d).decode()))
print(json.dumps(sorted(got)), flush=True)
"""


def test_udp_through_a_link_without_the_kernel(netns_pair_plain: Pair) -> None:
    """LinkUdpReceiver / LinkUdpSender on the af_packet link: datagrams from the kernel in
    b come out of the link's rx_burst; ours (unicast and multicast, checksums ours) reach
    kernel sockets in b."""
    from pollnet.backends.efvi.core import binding as _core

    if not _core.available():
        pytest.skip(f"{_core.LOAD_ERROR}; build the C core with `pip install -e .`")
    t = netns_pair_plain
    group = "239.6.6.6"
    krx = t.b.python(KERNEL_UDP_RX, t.pb.ip, group, stdout=subprocess.PIPE, text=True)
    assert krx.stdout is not None and krx.stdout.readline().strip() == "ready"
    ours = t.a.python(LINK_UDP, t.pa.ifname, t.pa.ip, t.pb.ip, t.pb.mac.replace(":", ""),
                      group, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert ours.stdout is not None
    first = ours.stdout.readline().strip()
    assert first == "ready", first + ours.communicate(timeout=10)[1]
    for i in range(10):
        t.b.run([sys.executable, "-c", "import socket,sys; socket.socket(socket.AF_INET, "
                 "socket.SOCK_DGRAM).sendto(sys.argv[1].encode(), (sys.argv[2], 6601))",
                 f"k{i}", t.pa.ip])
    got = json.loads(ours.communicate(timeout=30)[0].strip().splitlines()[-1])
    assert [m for m, _ in got] == [f"k{i}" for i in range(10)]
    assert {src for _, src in got} == {t.pb.ip}
    kgot = json.loads(krx.communicate(timeout=30)[0].strip().splitlines()[-1])
    assert kgot == sorted([f"to-b{i}" for i in range(10)] + [f"to-g{i}" for i in range(10)])
