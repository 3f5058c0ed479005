"""Our TCP stack on a real link against the kernel's TCP, in private namespaces.

native/tests/links/interop.c (the C API directly) runs in namespace a; a Python peer with
kernel sockets runs in namespace b. Each transfer moves a few MB both ways and both sides
compare SHA-256 digests of what was sent and what arrived.

Links: af_packet and af_xdp (native and generic XDP) with the stack owning an address the
kernel does not have (own_ip), and both sharing the kernel's address: ports held by kernel
sockets, frames steered by the XDP program (af_xdp) or hidden from the kernel by a tc
ingress filter (af_packet), so the kernel never answers our peers with RSTs.
efvi: the ef_vi link built against pollnet's ef_vi look-alike (native/efvi_shim, frames
over AF_PACKET), own_ip only (the look-alike cannot steal frames from the kernel as NIC
filters do); "ctpio" runs it with the CTPIO path on and 5% of CTPIO sends failing over
to the DMA fallback (see docs/efvi-link.md).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import require_netns
from .netns import REPO, Bridged, Pair, Topology

pytestmark = pytest.mark.netns

LINKS = REPO / "native" / "tests" / "links"
BIN = REPO / "native" / "build" / "links" / "interop"
MB = 1 << 20
PORT = 5201

# The kernel's side: an echo server for our client, a client for our server. Each also
# reports its namespace's SACK counters: the SACK blocks it took in (TCPSackShifted,
# TCPSackMerged, TCPSackShiftFallback: only ours reach it) and its SACK recoveries.
SACK_COUNTERS = """
def sack_counters():
    rows = [l.split() for l in open("/proc/net/netstat") if l.startswith("TcpExt:")]
    d = {k: int(v) for k, v in zip(rows[0][1:], rows[1][1:])}
    return {"sack_blocks_in": d.get("TCPSackShifted", 0) + d.get("TCPSackMerged", 0)
            + d.get("TCPSackShiftFallback", 0), "sack_recoveries": d.get("TCPSackRecovery", 0)}
"""
ECHO_SERVER = SACK_COUNTERS + """
import hashlib, json, socket, sys
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((sys.argv[1], int(sys.argv[2]))); ls.listen(1)
print("ready", flush=True)
ls.settimeout(60)
c, _ = ls.accept(); c.settimeout(60)
h, n = hashlib.sha256(), 0
while True:
    d = c.recv(65536)
    if not d:
        break
    h.update(d); n += len(d)
    c.sendall(d)
c.shutdown(socket.SHUT_WR)
c.close()
print(json.dumps({"received": n, "sha256": h.hexdigest(), **sack_counters()}), flush=True)
"""

# A kernel client: sends seeded random bytes, reads the echo, reports digests and the time
# from connect to the last echoed byte.
KERNEL_CLIENT = SACK_COUNTERS + """
import hashlib, json, random, socket, sys, threading, time
data = random.Random(int(sys.argv[4])).randbytes(int(sys.argv[3]))
t0 = time.perf_counter()
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=120)
h, n = hashlib.sha256(), 0
def reader():
    global n
    while True:
        d = c.recv(262144)
        if not d:
            break
        h.update(d); n += len(d)
t = threading.Thread(target=reader); t.start()
c.sendall(data); c.shutdown(socket.SHUT_WR)
t.join(240)
secs = time.perf_counter() - t0
print(json.dumps({"sent": len(data), "sha256_sent": hashlib.sha256(data).hexdigest(),
                  "received": n, "sha256": h.hexdigest(), "secs": secs,
                  **sack_counters()}), flush=True)
"""

# (ours: interop's result line, theirs: the kernel side's JSON)
Outcome = tuple[dict[str, str], dict[str, Any]]

# (id, link, xdp mode, own_ip)
LINK_CASES = [
    ("af_packet", "af_packet", "auto", True),
    ("af_xdp-native", "af_xdp", "native", True),
    ("af_xdp-generic", "af_xdp", "generic", True),
    ("af_xdp-shared", "af_xdp", "auto", False),
    ("af_packet-shared", "af_packet", "auto", False),
    ("efvi-shim", "efvi", "auto", True),
    ("efvi-shim-ctpio", "efvi", "ctpio", True),
]
EFVI_SHIM = REPO / "native" / "efvi_shim"
EFVI_BIN = REPO / "native" / "build" / "efvi_shim" / "interop-efvi"


def _build(link: str = "") -> Path:
    if shutil.which("make") is None or shutil.which("cc") is None:
        pytest.skip("no C compiler or make (apt-get install build-essential)")
    if link == "efvi":
        r = subprocess.run(["make", "-s", "-C", str(EFVI_SHIM)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.fail("building interop-efvi failed:\n" + r.stdout + r.stderr)
        return EFVI_BIN
    r = subprocess.run(["make", "-s", "-C", str(LINKS), "interop"], capture_output=True,
                       text=True)
    if r.returncode != 0:
        pytest.fail("building interop failed:\n" + r.stdout + r.stderr)
    return BIN


def _env(link: str, mode: str) -> list[str]:
    """The efvi look-alike's knobs: its counters on stderr at exit (a failure shows them);
    "ctpio": CTPIO on, with some CTPIO sends failing over."""
    if link != "efvi":
        return []
    if mode == "ctpio":
        return ["env", "EFVI_SHIM_STATS=1", "EFVI_SHIM_CTPIO=1", "EFVI_SHIM_CTPIO_FAIL_PCT=5"]
    return ["env", "EFVI_SHIM_STATS=1"]


def _need_bpf(link: str, own: bool) -> None:
    """af_xdp, and af_packet sharing the kernel's address (its tc filter), need the BPF
    side of native/build_links.py (libxdp, libbpf, clang)."""
    if link == "af_xdp" or (link == "af_packet" and not own):
        vars_mk = REPO / "native" / "build" / "links" / "vars.mk"
        if "LINK_HAVE_AF_XDP := 1" not in vars_mk.read_text():
            pytest.skip("this build has no af_xdp link nor tc filter (libxdp/libbpf/clang "
                        "were missing)")


def _result(out: str) -> dict[str, str]:
    line = next((ln for ln in out.splitlines() if ln.startswith("result ")), "")
    assert line, out
    return dict(kv.split("=", 1) for kv in line.split()[1:])


def _our_ip(t: Pair | Bridged, own: bool) -> str:
    return t.free_ip() if own else t.pa.ip


def run_client(t: Topology, a_ip: str, link: str, mode: str, own: bool, nbytes: int,
               pcap: Path | None = None, timeout: int = 60, sack: bool = False) -> Outcome:
    """Our stack connects from namespace a to a kernel echo server in b."""
    binary = _build(link)
    _need_bpf(link, own)
    assert isinstance(t, Pair | Bridged)
    srv = t.b.python(ECHO_SERVER, t.pb.ip, str(PORT), stdout=subprocess.PIPE, text=True)
    assert srv.stdout is not None and srv.stdout.readline().strip() == "ready"
    cmd = [*_env(link, mode), str(binary), "--link", link, "--mode", mode, "--if", t.pa.ifname,
           "--ip", a_ip, "--connect", t.pb.ip, "--port", str(PORT), "--bytes", str(nbytes),
           "--timeout", str(timeout)]
    if own:
        cmd.append("--own")
    if sack:
        cmd.append("--sack")
    if pcap is not None:
        cmd += ["--pcap", str(pcap)]
    r = t.a.run(cmd, check=False, timeout=timeout + 30)
    ours = _result(r.stdout + r.stderr)
    assert r.returncode == 0, r.stdout + r.stderr
    out, _ = srv.communicate(timeout=30)
    return ours, json.loads(out.strip().splitlines()[-1])


def run_server(t: Topology, a_ip: str, link: str, mode: str, own: bool, nbytes: int,
               timeout: int = 60, sack: bool = False) -> Outcome:
    """A kernel client in b connects to our stack listening in a."""
    binary = _build(link)
    _need_bpf(link, own)
    assert isinstance(t, Pair | Bridged)
    cmd = [*_env(link, mode), str(binary), "--link", link, "--mode", mode, "--if", t.pa.ifname,
           "--ip", a_ip, "--listen", "--port", str(PORT), "--bytes", str(nbytes),
           "--timeout", str(timeout)]
    if own:
        cmd.append("--own")
    if sack:
        cmd.append("--sack")
    ours_p = t.a.popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert ours_p.stdout is not None
    first = ours_p.stdout.readline()
    assert first.strip() == "ready", first + ours_p.stdout.read()
    kc = t.b.run([sys.executable, "-c", KERNEL_CLIENT, a_ip, str(PORT), str(nbytes), "7"],
                 timeout=timeout + 30)
    theirs = json.loads(kc.stdout.strip().splitlines()[-1])
    out, _ = ours_p.communicate(timeout=timeout + 30)
    ours = _result(out)
    assert ours_p.returncode == 0, out
    return ours, theirs


@pytest.mark.parametrize(("link", "mode", "own"), [c[1:] for c in LINK_CASES],
                         ids=[c[0] for c in LINK_CASES])
def test_our_client_to_kernel_echo_server(netns_pair_plain: Pair, link: str, mode: str,
                                          own: bool) -> None:
    t = netns_pair_plain
    n = 4 * MB
    ours, theirs = run_client(t, _our_ip(t, own), link, mode, own, n)
    assert int(ours["sent"]) == n == theirs["received"]
    assert ours["sha256_sent"] == theirs["sha256"]
    assert int(ours["received"]) == n and ours["sha256_received"] == ours["sha256_sent"]


@pytest.mark.parametrize(("link", "mode", "own"), [c[1:] for c in LINK_CASES],
                         ids=[c[0] for c in LINK_CASES])
def test_kernel_client_to_our_echo_server(netns_pair_plain: Pair, link: str, mode: str,
                                          own: bool) -> None:
    t = netns_pair_plain
    n = 4 * MB
    ours, theirs = run_server(t, _our_ip(t, own), link, mode, own, n)
    assert theirs["sent"] == n == int(ours["received"])
    assert ours["sha256_received"] == theirs["sha256_sent"]
    assert theirs["received"] == n and theirs["sha256"] == theirs["sha256_sent"]


def test_af_xdp_with_kernel_offloads_on(netns_pair: Pair) -> None:
    """Veth as it comes: the kernel's frames carry only the pseudo-header checksum
    (CHECKSUM_PARTIAL), which the link flags and the stack accepts."""
    t = netns_pair
    ours, theirs = run_client(t, t.free_ip(), "af_xdp", "native", True, 2 * MB)
    assert ours["sha256_sent"] == theirs["sha256"] == ours["sha256_received"]


IMPAIRMENTS = {
    "loss2": {"loss": 0.02},
    "reorder5": {"reorder": 0.05, "reorder_ms": 3.0},
    "dup5": {"duplicate": 0.05},
    "corrupt2": {"corrupt": 0.02},
    "mixed": {"loss": 0.01, "reorder": 0.02, "reorder_ms": 2.0, "duplicate": 0.02,
              "delay_ms": 0.5, "jitter_ms": 0.5},
}


@pytest.mark.parametrize("impair", list(IMPAIRMENTS))
@pytest.mark.parametrize("link", ["af_packet", "af_xdp", "efvi"])
def test_through_an_impaired_bridge(netns_bridged: Callable[..., Bridged], link: str,
                                    impair: str) -> None:
    """Seeded loss, reordering, duplication and delay each way: our retransmission and
    reassembly against the kernel's. Our address is not in b's static ARP, so b resolves
    it through the bridge too."""
    t = netns_bridged(seed=2026, **IMPAIRMENTS[impair])
    n = 1 * MB
    ours, theirs = run_client(t, t.free_ip(), link, "auto", True, n, timeout=120)
    assert ours["sha256_sent"] == theirs["sha256"] == ours["sha256_received"]
    st = t.stats(final=True)
    for key, knob in (("lost", "loss"), ("reordered", "reorder"),
                      ("duplicated", "duplicate"), ("corrupted", "corrupt")):
        if IMPAIRMENTS[impair].get(knob):
            assert st["a>b"][key] > 0 and st["b>a"][key] > 0, st


@pytest.mark.parametrize("link", ["af_packet", "af_xdp", "efvi"])
def test_kernel_client_through_a_lossy_bridge(netns_bridged: Callable[..., Bridged],
                                              link: str) -> None:
    t = netns_bridged(loss=0.02, seed=7)
    ours, theirs = run_server(t, t.free_ip(), link, "auto", True, 1 * MB, timeout=120)
    assert ours["sha256_received"] == theirs["sha256_sent"] == theirs["sha256"]


@pytest.mark.parametrize("side", ["client", "server"])
@pytest.mark.parametrize("link", ["af_packet", "af_xdp"])
def test_sack_both_ways_with_the_kernel(netns_bridged: Callable[..., Bridged], link: str,
                                        side: str) -> None:
    """SACK (RFC 2018) negotiated with the kernel and used by both senders through 2%
    loss: ours recovers from the kernel's SACK blocks (RFC 6675), the kernel takes in ours
    and recovers with them (its namespace's counters), and every byte arrives both ways."""
    t = netns_bridged(loss=0.02, seed=11)
    run = run_client if side == "client" else run_server
    ours, theirs = run(t, t.free_ip(), link, "auto", True, 2 * MB, timeout=120, sack=True)
    assert ours["sha256_sent"] == ours["sha256_received"], ours
    assert theirs["sha256"] == (ours["sha256_sent"] if side == "client"
                                else theirs["sha256_sent"])
    assert ours["sack"] == "1", ours
    assert int(ours["sack_recoveries"]) > 0 and int(ours["sack_holes"]) > 0, ours
    assert theirs["sack_blocks_in"] > 0 and theirs["sack_recoveries"] > 0, theirs


@pytest.mark.parametrize("link", ["af_packet", "af_xdp", "efvi"])
def test_pcap_decodes_cleanly_with_tshark(netns_pair_plain: Pair, tmp_path: Path,
                                          link: str) -> None:
    if shutil.which("tshark") is None:
        pytest.skip("no tshark (apt-get install tshark)")
    require_netns()
    t = netns_pair_plain
    pcap = tmp_path / "interop.pcap"
    ours, _ = run_client(t, t.free_ip(), link, "auto", True, 256 * 1024, pcap=pcap)
    common = ["tshark", "-r", str(pcap), "-o", "ip.check_checksum:TRUE",
              "-o", "tcp.check_checksum:TRUE"]
    r = subprocess.run([*common, "-T", "fields", "-e", "frame.protocols"],
                       capture_output=True, text=True, timeout=60)
    warnings = [ln for ln in r.stderr.splitlines() if ln.strip() and "Running as user" not in ln]
    assert r.returncode == 0 and not warnings, r.stderr
    protos = r.stdout.splitlines()
    assert len(protos) > 100
    assert any("arp" in p for p in protos) and any("tcp" in p for p in protos)
    assert int(ours["sent"]) == 256 * 1024
    # Nothing malformed, no bad checksum (status 0 is "Bad"), no expert error.
    bad = subprocess.run(
        [*common, "-Y", "_ws.malformed || ip.checksum.status == 0 || "
                        "tcp.checksum.status == 0 || _ws.expert.severity >= error"],
        capture_output=True, text=True, timeout=60,
    )
    assert bad.returncode == 0 and bad.stdout.strip() == "", bad.stdout + bad.stderr


@pytest.mark.parametrize("link", ["af_packet", "af_xdp"])
def test_ping_pong_small_messages(netns_pair_plain: Pair, link: str) -> None:
    """One 64-byte message in flight at a time (no batching to hide behind): every echo
    comes back; the round trips are printed (speed is measured, never asserted)."""
    t = netns_pair_plain
    binary = _build()
    srv = t.b.python(ECHO_SERVER, t.pb.ip, str(PORT), stdout=subprocess.PIPE, text=True)
    assert srv.stdout is not None and srv.stdout.readline().strip() == "ready"
    r = t.a.run([str(binary), "--link", link, "--if", t.pa.ifname, "--ip", t.free_ip(),
                 "--own", "--connect", t.pb.ip, "--port", str(PORT), "--bytes", str(64 * 500),
                 "--pingpong", "64", "--timeout", "60"], check=False, timeout=90)
    srv.communicate(timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    rtt = next(ln for ln in r.stdout.splitlines() if ln.startswith("rtt_us"))
    assert "n=500 " in rtt
    print(f"{link}: {rtt}")
