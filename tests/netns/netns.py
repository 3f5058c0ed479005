"""Private network namespaces for tests: uniquely named, joined by veth pairs, 10.x
addresses only inside them, and always torn down (context manager, atexit, and a sweep of
namespaces left by dead test processes).

    with pair() as t:                      # a <-veth-> b
        t.b.popen(["python3", "-m", "http.server"])
        t.a.run(["ip", "addr"])

    with bridged(loss=0.1, seed=7) as t:   # a <-veth-> br <-veth-> b, tools/impair_bridge.py in br
        ...

Nothing here touches the host's own interfaces: every veth is created directly inside its
namespaces (`ip link add ... netns A type veth peer ... netns B`).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

REPO = Path(__file__).resolve().parents[2]
BRIDGE = REPO / "tools" / "impair_bridge.py"
PREFIX = "pnt"  # every namespace made here is named pnt<pid>x<n><role>
_NAME_RE = re.compile(rf"^{PREFIX}(\d+)x\d+[a-z]+$")
_counter = itertools.count(1)
_live: list[Topology] = []


def available() -> tuple[bool, str]:
    """Whether this process can make network namespaces; the reason when it cannot."""
    if os.geteuid() != 0:
        return False, "needs root (network namespaces, veth pairs, AF_PACKET/AF_XDP)"
    if shutil.which("ip") is None:
        return False, "no `ip` command (apt-get install iproute2)"
    probe = f"{PREFIX}{os.getpid()}x0probe"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode != 0:
        return False, f"cannot create a network namespace: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return True, ""


def require_link(link: str) -> None:
    """Skip the calling test, saying why, unless private namespaces and this build's
    `link` are here."""
    import pytest

    ok, why = available()
    if not ok:
        pytest.skip(why)
    from pollnet.backends.efvi.core import binding as _core

    if link == "af_xdp" and not _core.has("pn_af_xdp_link_create"):
        pytest.skip("no af_xdp link in this build of pollnet._pncore")


def sweep_stale() -> list[str]:
    """Delete namespaces this module made in processes that no longer exist."""
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    gone = []
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        m = _NAME_RE.match(name)
        if m and not Path(f"/proc/{m.group(1)}").exists():
            _del_ns(name)
            gone.append(name)
    return gone


def _del_ns(name: str) -> None:
    # Kill whatever still runs inside, then delete (that also removes its veths).
    r = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
    for pid in r.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


@dataclass
class Namespace:
    """One private network namespace; commands run in it with `ip netns exec`."""

    name: str
    procs: list[subprocess.Popen[Any]] = field(default_factory=list)

    def argv(self, cmd: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *cmd]

    def run(
        self, cmd: Sequence[str], *, check: bool = True, timeout: float = 60, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        kw.setdefault("capture_output", True)
        r = subprocess.run(self.argv(cmd), text=True, timeout=timeout, check=False, **kw)
        if check and r.returncode != 0:
            raise RuntimeError(
                f"in {self.name}: {' '.join(cmd)} exited {r.returncode}: {r.stderr.strip()}"
            )
        return r

    def sh(self, script: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run(["sh", "-ec", script], **kw)

    def popen(self, cmd: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        """A process in this namespace, ended (and reaped) at teardown."""
        p = subprocess.Popen(self.argv(cmd), **kw)
        self.procs.append(p)
        return p

    def python(self, code: str, *args: str, **kw: Any) -> subprocess.Popen[Any]:
        return self.popen([sys.executable, "-c", code, *args], **kw)

    def stop_procs(self, timeout: float = 3.0) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + timeout
        for p in self.procs:
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs.clear()


@dataclass
class Port:
    """One end of a veth pair."""

    ns: Namespace
    ifname: str
    ip: str = ""          # dotted quad, "" when the end has no address (a bridge port)
    prefix: int = 24

    @property
    def mac(self) -> str:
        out = self.ns.run(["cat", f"/sys/class/net/{self.ifname}/address"]).stdout
        return out.strip()


class Topology:
    """Namespaces and veth pairs that exist until close() (or the end of the `with`)."""

    def __init__(self) -> None:
        self.tag = f"{PREFIX}{os.getpid()}x{next(_counter)}"
        self.subnet = f"10.213.{next(_counter) % 250}"
        self.namespaces: dict[str, Namespace] = {}
        self.bridge_stats: Path | None = None
        self._closed = False
        _live.append(self)

    # building
    def ns(self, role: str) -> Namespace:
        if role not in self.namespaces:
            name = self.tag + role
            subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
            ns = Namespace(name)
            self.namespaces[role] = ns
            ns.sh(
                "ip link set lo up; "
                "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; "
                "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6"
            )
        return self.namespaces[role]

    def veth(self, ns1: Namespace, if1: str, ns2: Namespace, if2: str,
             queues: int = 1) -> tuple[Port, Port]:
        """A veth pair; `queues` RX and TX queues at each end (the RX queue a frame lands
        on is the TX queue the other end sent it from)."""
        q = ["numrxqueues", str(queues), "numtxqueues", str(queues)] if queues > 1 else []
        subprocess.run(
            ["ip", "link", "add", if1, "netns", ns1.name, *q, "type", "veth",
             "peer", "name", if2, "netns", ns2.name, *q],
            check=True, capture_output=True,
        )
        for ns, ifn in ((ns1, if1), (ns2, if2)):
            ns.run(["ip", "link", "set", ifn, "up"])
        return Port(ns1, if1), Port(ns2, if2)

    @staticmethod
    def address(port: Port, ip: str, prefix: int = 24) -> None:
        port.ns.run(["ip", "addr", "add", f"{ip}/{prefix}", "dev", port.ifname])
        port.ip, port.prefix = ip, prefix

    @staticmethod
    def offloads(port: Port, on: bool) -> None:
        """TSO/GSO/TX checksum offload: off makes the kernel send complete, MTU-sized
        frames (with them on, veth carries CHECKSUM_PARTIAL and GSO super-frames)."""
        if shutil.which("ethtool") is None:
            raise RuntimeError("ethtool is needed to set offloads (apt-get install ethtool)")
        state = "on" if on else "off"
        port.ns.run(["ethtool", "-K", port.ifname, "tso", state, "gso", state, "tx", state],
                    check=False)

    # teardown
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for ns in self.namespaces.values():
            ns.stop_procs()
        for ns in self.namespaces.values():
            # An XDP program a crashed link left behind goes with the namespace anyway;
            # detaching first keeps the kernel from holding the veth a little longer.
            for mode in ("xdpgeneric", "xdpdrv"):
                subprocess.run(["ip", "-n", ns.name, "link", "set", "dev", "pn0", mode, "off"],
                               capture_output=True)
            _del_ns(ns.name)
        if self in _live:
            _live.remove(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Pair(Topology):
    """a <-> b: `pn0` in each, a = <subnet>.1, b = <subnet>.2, /24."""

    a: Namespace
    b: Namespace
    pa: Port
    pb: Port

    def __init__(self, *, offload: bool = True, queues: int = 1) -> None:
        super().__init__()
        try:
            self.a, self.b = self.ns("a"), self.ns("b")
            self.pa, self.pb = self.veth(self.a, "pn0", self.b, "pn0", queues)
            self.address(self.pa, f"{self.subnet}.1")
            self.address(self.pb, f"{self.subnet}.2")
            if not offload:
                self.offloads(self.pa, False)
                self.offloads(self.pb, False)
        except BaseException:
            self.close()
            raise

    def free_ip(self, host: int = 3) -> str:
        """An address in the subnet that no kernel has (for a stack in own_ip mode)."""
        return f"{self.subnet}.{host}"


class Bridged(Topology):
    """a <-> br <-> b: `pn0` in a and b (<subnet>.1 and .2), `pa`/`pb` in br, where
    tools/impair_bridge.py forwards frames with seeded faults. The ends have TSO/GSO and
    TX checksum offload off (the bridge forwards frames as they are on the wire) and static
    ARP entries (no ARP frame is ever lost, so a seed decides exactly which frames drop)."""

    a: Namespace
    b: Namespace
    br: Namespace
    pa: Port
    pb: Port

    def __init__(
        self,
        *,
        loss: float = 0.0,
        duplicate: float = 0.0,
        reorder: float = 0.0,
        delay_ms: float = 0.0,
        jitter_ms: float = 0.0,
        reorder_ms: float = 5.0,
        corrupt: float = 0.0,
        seed: int = 1,
        duration: float = 120.0,
        static_arp: bool = True,
    ) -> None:
        super().__init__()
        try:
            self.a, self.br, self.b = self.ns("a"), self.ns("br"), self.ns("b")
            self.pa, bpa = self.veth(self.a, "pn0", self.br, "pa")
            self.pb, bpb = self.veth(self.b, "pn0", self.br, "pb")
            self.address(self.pa, f"{self.subnet}.1")
            self.address(self.pb, f"{self.subnet}.2")
            for p in (self.pa, self.pb, bpa, bpb):
                self.offloads(p, False)
            if static_arp:
                self.neighbour(self.pa, self.pb.ip, self.pb.mac)
                self.neighbour(self.pb, self.pa.ip, self.pa.mac)
            self.bridge_stats = Path(f"/tmp/{self.tag}-bridge.json")
            self.bridge = self.br.popen(
                [sys.executable, str(BRIDGE), "--if", "pa", "--if", "pb",
                 "--loss", str(loss), "--duplicate", str(duplicate), "--reorder", str(reorder),
                 "--delay-ms", str(delay_ms), "--jitter-ms", str(jitter_ms),
                 "--reorder-ms", str(reorder_ms), "--corrupt", str(corrupt),
                 "--seed", str(seed),
                 "--duration", str(duration), "--stats", str(self.bridge_stats)],
                stdout=subprocess.DEVNULL,
            )
            self._wait_bridge()
        except BaseException:
            self.close()
            raise

    @staticmethod
    def neighbour(port: Port, ip: str, mac: str) -> None:
        port.ns.run(["ip", "neigh", "replace", ip, "lladdr", mac, "nud", "permanent",
                     "dev", port.ifname])

    def free_ip(self, host: int = 3) -> str:
        return f"{self.subnet}.{host}"

    def _wait_bridge(self) -> None:
        assert self.bridge_stats is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.bridge.poll() is not None:
                raise RuntimeError(f"impair_bridge exited {self.bridge.returncode} at start")
            if self.bridge_stats.exists():
                return
            time.sleep(0.02)
        raise RuntimeError("impair_bridge did not start within 10 s")

    def stats(self, *, final: bool = False) -> dict[str, Any]:
        """The bridge's counters ({"a>b": {...}, "b>a": {...}}); final=True stops it first."""
        assert self.bridge_stats is not None
        if final and self.bridge.poll() is None:
            self.bridge.send_signal(signal.SIGTERM)
            self.bridge.wait(10)
        else:
            # The bridge rewrites the file every 100 ms; read the latest whole one.
            time.sleep(0.25)
        data: dict[str, Any] = json.loads(self.bridge_stats.read_text())
        return data

    def close(self) -> None:
        super().close()
        if self.bridge_stats is not None:
            with contextlib.suppress(FileNotFoundError):
                self.bridge_stats.unlink()


def pair(*, offload: bool = True, queues: int = 1) -> Pair:
    return Pair(offload=offload, queues=queues)


def bridged(**kw: Any) -> Bridged:
    return Bridged(**kw)


@atexit.register
def _teardown_all() -> None:
    for t in list(_live):
        t.close()


@contextlib.contextmanager
def pinned_cpu(cpu: int) -> Iterator[None]:
    """Run the body with this process pinned to one CPU (benchmarks: a busy-poller each)."""
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, old)
