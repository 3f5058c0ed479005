"""The efvi link (native/src/link_efvi.c) on pollnet's ef_vi look-alike (native/efvi_shim):
it compiles warning-free against the documented API, the look-alike keeps the documented
rules it models, and the link moves data with our TCP stack against the kernel's without
breaking any of them, whatever the receive prefix, with CTPIO and with CTPIO failing over.
(The full SHA-256 interop suite runs it too: test_interop.py, ids efvi-shim*.)"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from .conftest import require_netns
from .netns import REPO, Pair
from .test_interop import ECHO_SERVER, KERNEL_CLIENT

pytestmark = pytest.mark.netns

SHIM = REPO / "native" / "efvi_shim"
OUT = REPO / "native" / "build" / "efvi_shim"
PORT = 5301


def _make(*targets: str) -> None:
    if shutil.which("make") is None or shutil.which("cc") is None:
        pytest.skip("no C compiler or make (apt-get install build-essential)")
    r = subprocess.run(["make", "-s", "-C", str(SHIM), *targets], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_link_compiles_with_warnings_as_errors() -> None:
    """-std=c11 -Wall -Wextra -Werror, against the look-alike's headers and as the stub a
    build without Onload gets."""
    _make(str(OUT / "link_efvi.o"))
    r = subprocess.run(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-D_GNU_SOURCE",
                        f"-I{REPO / 'native' / 'include'}", f"-I{REPO / 'native' / 'src'}",
                        "-DPN_EFVI_SKIP=2", "-c", "-o", "/dev/null",
                        str(REPO / "native" / "src" / "link_efvi.c")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_the_look_alike_keeps_the_documented_rules(netns_pair: Pair) -> None:
    _make(str(OUT / "shimtest"))
    r = netns_pair.a.run([str(OUT / "shimtest")], check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split() == ["ok", "pd", "ok", "memreg", "ok", "vi", "ok", "rx-ring", "ok",
                                "filters", "ok", "rx-scatter", "ok", "tx", "ok", "free"]


def _fields(out: str, prefix: str) -> dict[str, str]:
    line = next((ln for ln in out.splitlines() if ln.startswith(prefix + " ")), "")
    assert line, out
    return dict(kv.split("=", 1) for kv in line.split()[1:])


VARIANTS = {
    "default": [],
    "no-prefix": ["EFVI_SHIM_PREFIX_LEN=0", "EFVI_SHIM_RX_TIMESTAMPS=0"],
    "prefix-32": ["EFVI_SHIM_PREFIX_LEN=32"],
    "ctpio": ["EFVI_SHIM_CTPIO=1"],
    "ctpio-failing": ["EFVI_SHIM_CTPIO=1", "EFVI_SHIM_CTPIO_FAIL_PCT=30"],
}


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("role", ["client", "server"])
def test_efvi_link_against_the_kernel(netns_pair_plain: Pair, variant: str, role: str) -> None:
    run(netns_pair_plain, variant, role, "interop-efvi")


@pytest.mark.parametrize("role", ["client", "server"])
def test_with_kernel_offloads_on_under_asan(netns_pair: Pair, role: str) -> None:
    """Veth as it comes (the kernel peer sends GSO super-frames, which the look-alike cuts
    to MTU size as the peer's NIC would), CTPIO failing over, AddressSanitizer + UBSan."""
    run(netns_pair, "ctpio-failing", role, "interop-efvi-asan")


def run(t: Pair, variant: str, role: str, binary: str) -> None:
    require_netns()
    _make(str(OUT / binary))
    n = 512 * 1024
    ip = t.free_ip()
    cmd = ["env", "EFVI_SHIM_STATS=1", *VARIANTS[variant], str(OUT / binary), "--link", "efvi",
           "--if", t.pa.ifname, "--ip", ip, "--own", "--port", str(PORT), "--bytes", str(n),
           "--timeout", "30"]
    if role == "client":
        srv = t.b.python(ECHO_SERVER, t.pb.ip, str(PORT), stdout=subprocess.PIPE, text=True)
        assert srv.stdout is not None and srv.stdout.readline().strip() == "ready"
        r = t.a.run([*cmd, "--connect", t.pb.ip], check=False, timeout=60)
        out = r.stdout + r.stderr
        theirs = json.loads(srv.communicate(timeout=30)[0].strip().splitlines()[-1])
        assert r.returncode == 0, out
        ours = _fields(out, "result")
        assert ours["sha256_sent"] == theirs["sha256"] == ours["sha256_received"]
    else:
        p = t.a.popen([*cmd, "--listen"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                      text=True)
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        kc = t.b.run([sys.executable, "-c", KERNEL_CLIENT, ip, str(PORT), str(n), "3"],
                     timeout=60)
        theirs = json.loads(kc.stdout.strip().splitlines()[-1])
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 0, out
        ours = _fields(out, "result")
        assert ours["sha256_received"] == theirs["sha256_sent"] == theirs["sha256"]
    assert "API misuse" not in out, out
    info = _fields(out, "efvi")
    ctpio = variant.startswith("ctpio")
    assert info["ctpio"] == ("1" if ctpio else "0")
    assert (int(info["tx_ctpio_ok"]) > 0) == ctpio
    assert info["rx_timestamps"] == ("0" if variant == "no-prefix" else "1")
    assert info["rx_ts_missing"] == "0"  # every frame got its timestamp (hw_ts_ns)
    assert info["prefix"] == {"no-prefix": "0", "prefix-32": "32"}.get(variant, "16")
    # Filters left at the end: the client's connection sits in TIME_WAIT (it closed first)
    # and keeps its 4-tuple filter; the server keeps its listener's.
    assert info["filters"] == "1"
    if role == "client":  # we resolved the kernel's MAC through its neighbour table
        assert int(info["arp_from_kernel"]) >= 1
    shim = _fields(out, "efvi_shim:")
    assert shim["violations"] == "0" and shim["rx_oversize"] == "0", out
    if variant == "ctpio-failing":
        assert int(shim["tx_ctpio_fallback"]) > 0 and int(shim["tx_ctpio"]) > 0


def test_pollnet_info_says_what_the_efvi_link_runs_on() -> None:
    from pollnet.backends.efvi.core import binding as _core
    from pollnet.probe import efvi_build_info, probe_all

    if not _core.available():
        pytest.skip(f"{_core.LOAD_ERROR}; build the C core with `pip install -e .`")
    build = efvi_build_info()
    assert build is not None, "a built core always has pn_efvi_build_info()"
    assert build.startswith(("not built: ", "efvi_shim", "AMD Onload"))
    (probe,) = [p for p in probe_all() if p.name == "efvi link=efvi"]
    assert f"link: {build}" in probe.detail
    if build.startswith("not built"):
        assert not probe.available


UDP_TX = """
import socket, sys, time
own, group, b_ip = sys.argv[1], sys.argv[2], sys.argv[3]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
m = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
m.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(b_ip))
for i in range(10):
    u.sendto(b"u%d" % i, (own, 6500))
    u.sendto(b"x%d" % i, (own, 6502))
    m.sendto(b"m%d" % i, (group, 6501))
    time.sleep(0.005)
"""


def test_udp_filters_on_the_efvi_link(netns_pair_plain: Pair) -> None:
    """pn_efvi_link_udp_filter: ip4_local UDP filters (a unicast port, a multicast group)
    bring exactly those datagrams to the link; a port without a filter stays away."""
    _make(str(OUT / "udptest"))
    t = netns_pair_plain
    own = t.free_ip()
    # b must know where own is (no stack answers ARP here): a static neighbour entry.
    t.b.run(["ip", "neigh", "replace", own, "lladdr", t.pa.mac, "dev", t.pb.ifname])
    p = t.a.popen(["env", "EFVI_SHIM_STATS=1", str(OUT / "udptest"), t.pa.ifname, own,
                   "239.5.6.7", "10"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                  text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    t.b.run([sys.executable, "-c", UDP_TX, own, "239.5.6.7", t.pb.ip])
    out, _ = p.communicate(timeout=30)
    assert p.returncode == 0, out
    got = _fields(out, "udp")
    assert got == {"unicast": "10", "multicast": "10", "unfiltered": "0", "filters": "1"}, out
    assert _fields(out, "efvi_shim:")["violations"] == "0"
