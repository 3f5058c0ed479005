"""The real links (af_packet, af_xdp) and rtnetlink against the kernel: each C test of
native/tests/links/linktest.c runs in a fresh pair of namespaces (a: the link, b: the
kernel peer). The same tests run without Python through native/tests/links/run.sh."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import require_netns
from .netns import REPO, Pair

pytestmark = pytest.mark.netns

LINKS = REPO / "native" / "tests" / "links"
BIN = REPO / "native" / "build" / "links" / "linktest"


def _build() -> Path:
    if shutil.which("make") is None or shutil.which("cc") is None:
        pytest.skip("no C compiler or make (apt-get install build-essential)")
    r = subprocess.run(["make", "-s", "-C", str(LINKS)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail("building linktest failed:\n" + r.stdout + r.stderr)
    return BIN


def have_af_xdp() -> bool:
    """Whether native/build_links.py built the af_xdp link (and the BPF programs)."""
    _build()
    vars_mk = REPO / "native" / "build" / "links" / "vars.mk"
    return "LINK_HAVE_AF_XDP := 1" in vars_mk.read_text()


def _names() -> list[str]:
    # The list is static in linktest.c; reading it from the source keeps collection cheap.
    src = (LINKS / "linktest.c").read_text()
    start = src.index("static const struct test tests[]")
    table = src[start:src.index("};", start)]
    return [line.split('"')[1] for line in table.splitlines() if line.strip().startswith('{"')]


@pytest.mark.parametrize("name", _names())
def test_link(name: str) -> None:
    require_netns()
    binary = _build()
    with Pair(offload=True) as t:
        r = t.a.run(
            [str(binary), "--ns-b", t.b.name, "--if", t.pa.ifname, "--ip-a", t.pa.ip,
             "--ip-b", t.pb.ip, "--own", t.free_ip(), "--only", name],
            check=False, timeout=120,
        )
    out = r.stdout + r.stderr
    skipped = next((ln for ln in out.splitlines() if ln.startswith(f"skip {name}:")), None)
    if skipped is not None and r.returncode == 0:
        pytest.skip(skipped.split(":", 1)[1].strip())
    assert r.returncode == 0 and f"ok   {name}" in out, out


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM", "exit"])
def test_xdp_program_leaves_with_the_process(netns_pair: Pair, how: str) -> None:
    """The af_xdp link attaches through a BPF link: the program is gone when the process
    is, however it ends (no stale XDP program on the interface)."""
    binary = _build()
    if not have_af_xdp():
        pytest.skip("this build has no af_xdp link (libxdp/libbpf/clang were missing)")
    t = netns_pair
    p = t.a.popen([str(binary), "--hold", "0" if how == "exit" else "30", "--if", t.pa.ifname],
                  stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    if how != "exit":
        assert "xdp" in t.a.run(["ip", "link", "show", t.pa.ifname]).stdout
        p.send_signal(getattr(signal, how))
    p.wait(10)
    deadline = time.monotonic() + 5
    while "xdp" in t.a.run(["ip", "link", "show", t.pa.ifname]).stdout:
        assert time.monotonic() < deadline, "the XDP program outlived its process"
        time.sleep(0.05)
