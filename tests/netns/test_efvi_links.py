"""The efvi backend's Python API (`TcpClient`/`TcpServer`) on the real links against the
kernel's TCP, in private namespaces: the same transfers as test_interop.py, through the
package a user imports. Skips (naming why) while `pollnet._pncore` is not built."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from .netns import Pair
from .test_interop import ECHO_SERVER, KERNEL_CLIENT, PORT

pytestmark = pytest.mark.netns

N = 2 << 20

OUR_CLIENT = r"""
import hashlib, json, random, sys, time
from pollnet.backends.efvi import TcpClient
from pollnet.config import EfviOptions
link, mode, iface, ip, peer, port, n = sys.argv[1:8]
port, n = int(port), int(n)
data = random.Random(5).randbytes(n)

class H:
    def __init__(self):
        self.est = self.closed = False
        self.failed = ""
        self.h, self.got = hashlib.sha256(), 0
    def on_connection_established(self, conn): self.est = True
    def on_data(self, conn, d):
        self.h.update(d); self.got += len(d); return 0
    def on_fin(self, conn, d):
        self.h.update(d); self.got += len(d); return 0
    def on_connection_closed(self, conn): self.closed = True
    def on_connection_reset(self, conn): self.failed = "reset"
    def on_connection_refused(self, conn): self.failed = "refused"
    def on_connection_timeout(self, conn): self.failed = "timeout"

h = H()
opts = EfviOptions(link=link, interface=iface, local_ip=ip, xdp_mode=mode)
with TcpClient(opts) as c:
    conn = c.connect(peer, port)
    sent, fin, end = 0, False, time.monotonic() + 60
    while not h.closed and not h.failed and time.monotonic() < end:
        c.poll(h)
        if h.est and sent < n:
            sent += conn.send(data[sent:sent + 65536])
        if h.got >= n and not fin:
            conn.send_fin()
            fin = True
    print(json.dumps({"sent": sent, "sha256_sent": hashlib.sha256(data[:sent]).hexdigest(),
                      "received": h.got, "sha256": h.h.hexdigest(), "closed": h.closed,
                      "failed": h.failed, "link": c.link_stats()}))
"""

OUR_SERVER = r"""
import hashlib, json, sys, time
from pollnet.backends.efvi import TcpServer
from pollnet.config import EfviOptions
link, mode, iface, ip, port = sys.argv[1:6]

class Echo:
    def __init__(self):
        self.closed = False
        self.failed = ""
        self.h, self.got, self.pending = hashlib.sha256(), 0, bytearray()
    def on_data(self, conn, d):
        self.h.update(d); self.got += len(d)
        self.pending += d
        return 0
    def on_fin(self, conn, d):
        self.on_data(conn, d)
        self.fin = conn
        return 0
    def on_connection_closed(self, conn): self.closed = True
    def on_connection_reset(self, conn): self.failed = "reset"
    def on_connection_timeout(self, conn): self.failed = "timeout"

h = Echo()
h.fin = None
opts = EfviOptions(link=link, interface=iface, local_ip=ip, xdp_mode=mode)
with TcpServer(opts, port=int(port)) as s:
    print("ready", flush=True)
    conn, fin_sent, end = None, False, time.monotonic() + 60
    while not h.closed and not h.failed and time.monotonic() < end:
        s.poll(h)
        for c in s.connections():
            conn = c
        if conn is not None and h.pending:
            k = conn.send(bytes(h.pending[:65536]))
            del h.pending[:k]
        if h.fin is not None and not h.pending and not fin_sent:
            h.fin.send_fin()
            fin_sent = True
    print(json.dumps({"received": h.got, "sha256": h.h.hexdigest(), "closed": h.closed,
                      "failed": h.failed}))
"""

CASES = [
    ("af_packet", "af_packet", "auto", True),
    ("af_packet-shared", "af_packet", "auto", False),
    ("af_xdp", "af_xdp", "auto", True),
    ("af_xdp-shared", "af_xdp", "auto", False),
]


def _require_core() -> None:
    try:
        from pollnet.backends.efvi.core import binding as _core
    except ImportError as exc:  # the backend itself is missing
        pytest.skip(f"pollnet.backends.efvi does not import: {exc}")
    if not _core.available():
        pytest.skip(f"the efvi core is not built: {_core.LOAD_ERROR}")
    if not _core.has("pn_af_packet_link_create"):
        pytest.skip("this build of pollnet._pncore has no real links (native/build_links.py)")


def _has_bpf() -> bool:
    """Whether the built core has the real af_xdp link (not the stub a build without
    libxdp/libbpf gets): the real one says "no parameters" to NULL params."""
    from pollnet.backends.efvi.core import binding as _core

    if not _core.has("pn_af_xdp_link_create"):
        return False
    err = _core.ffi.new("char[]", 256)
    _core.lib.pn_af_xdp_link_create(_core.ffi.NULL, err, 256)
    return "no parameters" in _core.c_string(err)


def _last_json(out: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return data


@pytest.mark.parametrize(("link", "mode", "own"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_efvi_client_to_kernel_echo_server(netns_pair_plain: Pair, link: str, mode: str,
                                           own: bool) -> None:
    _require_core()
    t = netns_pair_plain
    if (link == "af_xdp" or not own) and not _has_bpf():
        pytest.skip("this build has no af_xdp link nor tc filter (libxdp/libbpf/clang were "
                    "missing)")
    ip = t.free_ip() if own else t.pa.ip
    srv = t.b.python(ECHO_SERVER, t.pb.ip, str(PORT), stdout=subprocess.PIPE, text=True)
    assert srv.stdout is not None and srv.stdout.readline().strip() == "ready"
    r = t.a.run([sys.executable, "-c", OUR_CLIENT, link, mode, t.pa.ifname, ip, t.pb.ip,
                 str(PORT), str(N)], check=False, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    ours = _last_json(r.stdout)
    theirs = _last_json(srv.communicate(timeout=30)[0])
    assert ours["failed"] == "" and ours["closed"], ours
    assert ours["sent"] == N == theirs["received"] == ours["received"]
    assert ours["sha256_sent"] == theirs["sha256"] == ours["sha256"]


@pytest.mark.parametrize(("link", "mode", "own"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_kernel_client_to_efvi_echo_server(netns_pair_plain: Pair, link: str, mode: str,
                                           own: bool) -> None:
    _require_core()
    t = netns_pair_plain
    if (link == "af_xdp" or not own) and not _has_bpf():
        pytest.skip("this build has no af_xdp link nor tc filter (libxdp/libbpf/clang were "
                    "missing)")
    ip = t.free_ip() if own else t.pa.ip
    addr_errors = _ip_in_addr_errors(t)
    ours_p = t.a.popen([sys.executable, "-c", OUR_SERVER, link, mode, t.pa.ifname, ip,
                        str(PORT)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert ours_p.stdout is not None
    first = ours_p.stdout.readline()
    assert first.strip() == "ready", first + ours_p.stdout.read()
    kc = t.b.run([sys.executable, "-c", KERNEL_CLIENT, ip, str(PORT), str(N), "9"],
                 timeout=120)
    theirs = _last_json(kc.stdout)
    out, _ = ours_p.communicate(timeout=60)
    ours = _last_json(out)
    assert ours["failed"] == "" and ours["closed"], ours
    assert theirs["sent"] == N == ours["received"] == theirs["received"]
    assert theirs["sha256_sent"] == ours["sha256"] == theirs["sha256"]
    # our frames never reached the kernel's IP stack, which would drop those to an
    # address not its own (or route them, forwarding on): af_xdp steers them away, and
    # af_packet's tc filter drops them after the packet socket has them
    assert _ip_in_addr_errors(t) == addr_errors


def _ip_in_addr_errors(t: Pair) -> int:
    """Namespace a's IpInAddrErrors: IPv4 frames its kernel got for an address not its own."""
    out = t.a.run(["nstat", "-az", "IpInAddrErrors"]).stdout
    return int(next(line.split()[1] for line in out.splitlines()
                    if line.startswith("IpInAddrErrors")))


REOPEN = r"""
import gc, json, sys
from pollnet.backends.efvi import TcpClient
from pollnet.config import EfviOptions
iface, ip = sys.argv[1:3]
gc.disable()  # as between two tests: nothing collected the garbage yet
opts = EfviOptions(link="af_xdp", interface=iface, local_ip=ip)
first = TcpClient(opts)
first.me = first  # a reference cycle (a traceback holding it makes one too)
del first
try:
    TcpClient(opts).close()
    print(json.dumps({"ok": True, "err": ""}))
except Exception as exc:
    print(json.dumps({"ok": False, "err": str(exc)}))
"""


def test_a_queue_held_by_an_unreachable_stack_is_reclaimed(netns_pair_plain: Pair) -> None:
    # A stack left in a reference cycle still held interface queue 0: the next af_xdp link
    # on it failed with "queue 0 already has an AF_XDP socket" until a GC ran (behaviour
    # tests whose handler errors kept tracebacks failed that way now and then).
    _require_core()
    if not _has_bpf():
        pytest.skip("this build has no af_xdp link (libxdp/libbpf/clang were missing)")
    t = netns_pair_plain
    tried = _last_json(t.a.run([sys.executable, "-c", REOPEN, t.pa.ifname, t.free_ip()],
                               timeout=60).stdout)
    assert tried["ok"], tried
