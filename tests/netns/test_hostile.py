"""Hostile peers against our stack (issue 8), across a veth between private namespaces:
our efvi server (af_packet link, its own address) in namespace a; in namespace b the
kernel's TCP as a well-behaved client, hping3 flooding SYNs from random sources (bounded
count and rate), and a raw AF_PACKET peer crafting segments (RFC 5961 answers, a zero
window forever, never ACKing). The server prints its core counters (nstat names) at the
end; each test checks the answers, the connections' states and those counters."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any

import pytest

from .netns import Pair
from .test_efvi_links import _last_json, _require_core
from .test_interop import KERNEL_CLIENT

pytestmark = pytest.mark.netns

PORT = 7300
N = 1 << 20
# the flood: SYN count and hping3's interval (u100 = 10000/s nominal); bounded, never --flood
FLOOD_COUNT = int(os.environ.get("POLLNET_HOSTILE_FLOOD_COUNT", "20000"))
FLOOD_INTERVAL = os.environ.get("POLLNET_HOSTILE_FLOOD_INTERVAL", "u100")

# Our echo server: options as JSON; runs until `until` connections have ended (or `secs`
# seconds at most), then prints outcomes + counters.
OUR_SERVER = r"""
import json, signal, sys, time
from pollnet.backends.efvi import TcpServer
from pollnet.config import EfviOptions
iface, ip, port, secs, until, opts = sys.argv[1:7]
port, secs, until = int(port), float(secs), int(until)

class Echo:
    def __init__(self):
        self.pending, self.ended = {}, {"closed": 0, "reset": 0, "timeout": 0}
        self.fins = set()
    def on_connection_established(self, conn): self.pending[conn.conn_id] = bytearray()
    def on_data(self, conn, d):
        self.pending.setdefault(conn.conn_id, bytearray()).extend(d)
        return 0
    def on_fin(self, conn, d):
        self.on_data(conn, d); self.fins.add(conn.conn_id); return 0
    def _end(self, conn, how):
        self.ended[how] += 1; self.pending.pop(conn.conn_id, None); self.fins.discard(conn.conn_id)
    def on_connection_closed(self, conn): self._end(conn, "closed")
    def on_connection_reset(self, conn): self._end(conn, "reset")
    def on_connection_timeout(self, conn): self._end(conn, "timeout")

h = Echo()
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
o = EfviOptions(link="af_packet", interface=iface, local_ip=ip, **json.loads(opts))
with TcpServer(o, port=port) as s:
    print("ready", flush=True)
    end, fin_sent = time.monotonic() + secs, set()
    while time.monotonic() < end and not stop:
        s.poll(h)
        if sum(h.ended.values()) >= until:   # every connection the test makes has ended
            end = min(end, time.monotonic() + 1.0)
        for c in s.connections():
            p = h.pending.get(c.conn_id)
            if p:
                del p[:c.send(bytes(p[:65536]))]
            if c.conn_id in h.fins and not p and c.conn_id not in fin_sent:
                c.send_fin(); fin_sent.add(c.conn_id)
    print(json.dumps({"ended": h.ended, "stats": s.stats(), "link": s.link_stats()}),
          flush=True)
"""

# A raw TCP peer on AF_PACKET in namespace b, from an address no kernel has.
RAW_PEER = r"""
import json, socket, struct, sys, time
iface, src, dst, port, scenario = sys.argv[1:6]
port = int(port)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind((iface, 0x0800))
s.settimeout(0.05)
mymac = s.getsockname()[4]

def csum(b):
    if len(b) % 2: b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16: t = (t & 0xffff) + (t >> 16)
    return ~t & 0xffff

def ip4(a): return socket.inet_aton(a)

peer_mac = None
def arp_mac():
    # ask the stack for its MAC (it answers ARP for its own address)
    a = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
    a.bind((iface, 0x0806)); a.settimeout(0.2)
    req = (b"\xff" * 6 + mymac + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
           + mymac + ip4(src) + b"\0" * 6 + ip4(dst))
    for _ in range(20):
        a.send(req)
        try:
            while True:
                f = a.recv(100)
                if f[12:14] == b"\x08\x06" and f[20:22] == b"\0\x02" and f[28:32] == ip4(dst):
                    return f[22:28]
        except socket.timeout:
            pass
    raise SystemExit("no ARP reply")

def send(sport, seq, ack, flags, wnd=65535, data=b"", opts=b""):
    thl = 20 + len(opts)
    tcp = struct.pack("!HHIIBBHHH", sport, port, seq & 0xffffffff, ack & 0xffffffff,
                      (thl // 4) << 4, flags, wnd, 0, 0) + opts + data
    ph = ip4(src) + ip4(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", csum(ph + tcp)) + tcp[18:]
    iph = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0,
                      ip4(src), ip4(dst))
    iph = iph[:10] + struct.pack("!H", csum(iph)) + iph[12:]
    s.send(peer_mac + mymac + b"\x08\x00" + iph + tcp)

def recv(sport, t=0.3):
    # segments from the stack to (src, sport) within t seconds
    out, end = [], time.monotonic() + t
    while time.monotonic() < end:
        try:
            f = s.recv(2048)
        except socket.timeout:
            continue
        if f[23] != 6 or f[26:30] != ip4(dst) or f[30:34] != ip4(src):
            continue
        ihl = (f[14] & 15) * 4
        tp = f[14 + ihl:]
        sp, dp, seq, ack, off, fl, wnd = struct.unpack("!HHIIBBH", tp[:16])
        if dp != sport:
            continue
        tot = struct.unpack("!H", f[16:18])[0]
        out.append({"seq": seq, "ack": ack, "flags": fl, "wnd": wnd,
                    "data": tp[(off >> 4) * 4:tot - ihl]})
    return out

def handshake(sport, iss, wnd=65535):
    send(sport, iss, 0, 0x02, wnd, opts=struct.pack("!BBH", 2, 4, 1460))
    for r in recv(sport, 1.0):
        if r["flags"] & 0x12 == 0x12:
            send(sport, iss + 1, r["seq"] + 1, 0x10, wnd)
            return r["seq"] + 1
    raise SystemExit("no SYN-ACK")

peer_mac = arp_mac()
res = {}
if scenario == "rfc5961":
    sp, iss = 40001, 1000
    una = handshake(sp, iss)
    rn = iss + 1
    def acks(rs): return [r for r in rs if r["flags"] == 0x10 and not r["data"]]
    # data echoes: the connection works
    send(sp, rn, una, 0x18, data=b"hello"); rs = recv(sp)
    echo = b"".join(r["data"] for r in rs)
    res["echo"] = echo.decode(); rn += 5; una += len(echo)
    send(sp, rn, una, 0x10)
    # SYN on the established connection: a challenge ACK naming rcv_nxt (RFC 5961 4.2)
    send(sp, rn + 1000, 0, 0x02); rs = recv(sp)
    res["syn"] = [(r["flags"], r["ack"] - rn) for r in rs]
    # in-window RST not at rcv_nxt: a challenge ACK (RFC 5961 3.2)
    send(sp, rn + 10, 0, 0x04); rs = recv(sp)
    res["rst_in_window"] = [(r["flags"], r["ack"] - rn) for r in rs]
    # RST outside the window: silence
    send(sp, rn + 10_000_000, 0, 0x04); rs = recv(sp)
    res["rst_outside"] = len(rs)
    # an ACK for data never sent, with data: challenge ACK, data dropped (RFC 5961 5.2)
    send(sp, rn, una + 100000, 0x18, data=b"XXXX"); rs = recv(sp)
    res["future_ack"] = [(r["flags"], r["ack"] - rn, len(r["data"])) for r in rs]
    # an ACK far older than snd_una - max window, with data: challenge ACK, dropped
    send(sp, rn, una - 2_000_000, 0x18, data=b"YYYY"); rs = recv(sp)
    res["old_ack"] = [(r["flags"], r["ack"] - rn, len(r["data"])) for r in rs]
    # data beyond the window: a duplicate ACK (RFC 9293 3.10.7.4), nothing taken
    send(sp, rn + 5_000_000, una, 0x18, data=b"ZZZZ"); rs = recv(sp)
    res["outside_window"] = [(r["flags"], r["ack"] - rn, len(r["data"])) for r in rs]
    # still established: data echoes
    send(sp, rn, una, 0x18, data=b"again"); rs = recv(sp)
    echo = b"".join(r["data"] for r in rs)
    res["echo2"] = echo.decode(); rn += 5; una += len(echo)
    send(sp, rn, una, 0x10)
    # RST exactly at rcv_nxt: the connection ends; a later segment draws an RST
    send(sp, rn, 0, 0x04); recv(sp, 0.2)
    send(sp, rn, una, 0x18, data=b"late"); rs = recv(sp)
    res["after_rst"] = [r["flags"] for r in rs]
elif scenario == "limits":
    # 40002: zero window forever, every probe answered; 40003: never ACKs anything
    zw_una = handshake(40002, 5000)
    na_una = handshake(40003, 9000)
    send(40002, 5001, zw_una, 0x18, 0, data=b"z" * 100)   # echoed into our zero window
    send(40003, 9001, na_una, 0x18, 65535, data=b"n" * 100)
    end, probes, rsts, retrans = time.monotonic() + float(sys.argv[6]), 0, {}, 0
    while time.monotonic() < end:
        try:
            f = s.recv(2048)
        except socket.timeout:
            continue
        if f[23] != 6 or f[30:34] != ip4(src):
            continue
        tp = f[14 + (f[14] & 15) * 4:]
        sp, dp, seq, ack, off, fl, wnd = struct.unpack("!HHIIBBH", tp[:16])
        if fl & 0x04:
            rsts[dp] = rsts.get(dp, 0) + 1
        elif dp == 40002:
            probes += 1
            send(40002, 5101, zw_una, 0x10, 0)          # still zero
        elif dp == 40003 and len(tp) > (off >> 4) * 4:
            retrans += 1                                   # never acknowledged
    res = {"probes": probes, "rsts": rsts, "retrans": retrans}
print(json.dumps(res), flush=True)
"""


def _server(t: Pair, ip: str, until: int, **opts: Any) -> subprocess.Popen[str]:
    p = t.a.popen([sys.executable, "-c", OUR_SERVER, t.pa.ifname, ip, str(PORT), "20",
                   str(until), json.dumps(opts)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                  text=True)
    assert p.stdout is not None
    first = p.stdout.readline()
    assert first.strip() == "ready", first + p.stdout.read()
    return p


def _finish(p: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = p.communicate(timeout=60)
    return _last_json(out)


def _kernel_echo(t: Pair, ip: str, srv: subprocess.Popen[str]) -> None:
    kc = t.b.run([sys.executable, "-c", KERNEL_CLIENT, ip, str(PORT), str(N), "3"],
                 timeout=60, check=False)
    if kc.returncode != 0:   # say what our side saw
        srv.terminate()
        out, _ = srv.communicate(timeout=30)
        why = kc.stderr.strip().splitlines()[-1]
        pytest.fail(f"kernel client: {why}; ours: {out[-3000:]}")
    theirs = _last_json(kc.stdout)
    assert theirs["sent"] == N == theirs["received"]
    assert theirs["sha256_sent"] == theirs["sha256"]


def test_syn_flood_from_random_sources(netns_pair_plain: Pair) -> None:
    """hping3: 20000 SYNs at 10000/s (nominal) from random sources; a kernel client
    connects in the middle of it and echoes 1 MB intact; the half-open pool held, the rest
    got cookies. POLLNET_HOSTILE_FLOOD_COUNT / _INTERVAL change the flood (bounded)."""
    _require_core()
    if shutil.which("hping3") is None:
        pytest.skip("no hping3 (apt-get install hping3)")
    t = netns_pair_plain
    ip = t.free_ip()
    srv = _server(t, ip, 1, max_conn_cnt=32)
    t0 = time.monotonic()
    flood = t.b.popen(["hping3", "-S", "-p", str(PORT), "--rand-source", "-c",
                       str(FLOOD_COUNT), "-i", FLOOD_INTERVAL, "-q", ip],
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)                                   # the pool is full by now
    _kernel_echo(t, ip, srv)
    flood.wait(timeout=30)
    flood_s = time.monotonic() - t0
    ours = _finish(srv)
    st = ours["stats"]
    print(f"flood: {FLOOD_COUNT} SYNs every {FLOOD_INTERVAL} in {flood_s:.2f} s (hping3 exits "
          "~1 s after its last); counters:", {k: v for k, v in st.items() if v},
          "link:", {k: v for k, v in ours["link"].items() if v})
    assert ours["ended"] == {"closed": 1, "reset": 0, "timeout": 0}
    assert st["TcpExtSyncookiesSent"] > min(1000, FLOOD_COUNT // 20)
    assert st["TcpExtTCPReqQFullDoCookies"] == st["TcpExtSyncookiesSent"]
    assert st["TcpExtSyncookiesFailed"] == 0
    assert st["TcpPassiveOpens"] >= 1


def test_crafted_segments_get_rfc5961_answers(netns_pair_plain: Pair) -> None:
    _require_core()
    t = netns_pair_plain
    ip = t.free_ip()
    srv = _server(t, ip, 1)
    r = t.b.run([sys.executable, "-c", RAW_PEER, t.pb.ifname, t.free_ip(9), ip, str(PORT),
                 "rfc5961"], timeout=30)
    res = _last_json(r.stdout)
    ours = _finish(srv)
    st = ours["stats"]
    print("rfc5961 answers:", res)
    print("rfc5961 counters:", {k: v for k, v in st.items() if v})
    assert res["echo"] == "hello"
    assert res["syn"] == [[0x10, 0]]                  # one challenge ACK at rcv_nxt
    assert res["rst_in_window"] == [[0x10, 0]]
    assert res["rst_outside"] == 0
    assert res["future_ack"] == [[0x10, 0, 0]]        # challenged, its data not taken
    assert res["old_ack"] == [[0x10, 0, 0]]
    assert res["outside_window"] == [[0x10, 0, 0]]    # a duplicate ACK
    assert res["echo2"] == "again"                    # still established after all that
    assert res["after_rst"] == [0x04]                 # gone: an RST answers
    assert ours["ended"]["reset"] == 1
    assert st["TcpExtTCPChallengeACK"] == 4
    assert st["TcpEstabResets"] == 1
    assert st["TcpInRsts"] == 3


def test_zero_window_and_silent_peers_end_at_their_limits(netns_pair_plain: Pair) -> None:
    """A peer that keeps a zero window (answering every probe) and one that never ACKs
    end at zero_window_timeout_ms and tcp_retries; a kernel client's 1 MB echo on the same
    stack is unaffected."""
    _require_core()
    t = netns_pair_plain
    ip = t.free_ip()
    srv = _server(t, ip, 3, zero_window_timeout_ms=2000, tcp_retries=3, max_rto_ms=400)
    peer = t.b.popen([sys.executable, "-c", RAW_PEER, t.pb.ifname, t.free_ip(9), ip,
                      str(PORT), "limits", "4"], stdout=subprocess.PIPE, text=True)
    _kernel_echo(t, ip, srv)
    out, _ = peer.communicate(timeout=30)
    res = _last_json(out)
    ours = _finish(srv)
    st = ours["stats"]
    print("limits peer:", res)
    print("limits counters:", {k: v for k, v in st.items() if v})
    assert ours["ended"] == {"closed": 1, "reset": 0, "timeout": 2}
    assert st["PnZeroWindowAborts"] == 1
    assert st["TcpExtTCPAbortOnTimeout"] == 2
    assert res["probes"] >= 2
    assert res["retrans"] == 4                        # the first send + tcp_retries = 3
    assert res["rsts"].get("40002") == 1              # the zero-window abort says so
