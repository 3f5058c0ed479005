"""A private pair of network namespaces joined by one veth, for `pollnet bench`.

    with VethPair.create() as net:      # ns "a" (client side) <-veth-> ns "b" (server side)
        net.a_ip, net.b_ip              # kernel addresses 10.x inside them
        net.own_ip("a")                 # a free 10.x address for a user-space stack

Clean-up is guaranteed four ways: the context manager, an atexit hook, SIGINT/SIGTERM/
SIGHUP handlers that tear down before the default action, and a sweep at creation of
namespaces left by bench processes that no longer exist (the names carry the pid).
Nothing touches the host's interfaces: the veth is created directly inside the namespaces.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

PREFIX = "pnb"  # pnb<pid>n<k>a / pnb<pid>n<k>b
_NAME = re.compile(rf"^{PREFIX}(\d+)n\d+[ab]$")
_counter = itertools.count(1)
_live: list[VethPair] = []
_hooks_installed = False
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise NetnsError(f"`ip {' '.join(args)}` failed: {r.stderr.strip()}")
    return r


class NetnsError(RuntimeError):
    """The namespaces could not be set up."""


def available() -> tuple[bool, str]:
    """(True, "") when this process can make namespaces; else (False, why)."""
    if os.geteuid() != 0:
        return False, "network namespaces need root"
    if shutil.which("ip") is None:
        return False, "no `ip` command (apt-get install iproute2)"
    probe = f"{PREFIX}{os.getpid()}n0a"
    r = _ip("netns", "add", probe, check=False)
    if r.returncode != 0:
        return False, f"cannot create a network namespace: {r.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return True, ""


def list_ours() -> list[str]:
    """Names of every namespace this module made (in any process)."""
    r = _ip("netns", "list", check=False)
    names = [line.split()[0] for line in r.stdout.splitlines() if line.strip()]
    return [n for n in names if _NAME.match(n)]


def sweep_stale() -> list[str]:
    """Delete the namespaces of bench processes that no longer exist."""
    gone = []
    for name in list_ours():
        m = _NAME.match(name)
        if m and not Path(f"/proc/{m.group(1)}").exists():
            _delete(name)
            gone.append(name)
    return gone


def _delete(name: str) -> None:
    r = _ip("netns", "pids", name, check=False)
    for pid in r.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError, PermissionError):
            os.kill(int(pid), signal.SIGKILL)
    _ip("netns", "del", name, check=False)


def cleanup_all() -> None:
    """Tear down every pair this process still holds (atexit and signal handlers)."""
    while _live:
        _live.pop().close()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    cleanup_all()
    signal.signal(signum, signal.SIG_DFL)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    os.kill(os.getpid(), signum)


def _install_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(cleanup_all)
    for s in _SIGNALS:
        with contextlib.suppress(ValueError):  # not the main thread: atexit still holds
            if signal.getsignal(s) in (signal.SIG_DFL, signal.default_int_handler):
                signal.signal(s, _on_signal)


@dataclass
class VethPair:
    """Namespaces `a` and `b`, veth `a_if` in a and `b_if` in b, on 10.<x>.<y>.0/24."""

    a: str
    b: str
    subnet: str  # "10.x.y"
    a_if: str = "pnb0"
    b_if: str = "pnb1"
    closed: bool = False
    mtu: int = 1500
    _own: dict[str, int] = field(default_factory=lambda: {"a": 11, "b": 12})

    @property
    def a_ip(self) -> str:
        return f"{self.subnet}.1"

    @property
    def b_ip(self) -> str:
        return f"{self.subnet}.2"

    def own_ip(self, side: str) -> str:
        """An address on the subnet the kernel does not hold: for a user-space stack."""
        return f"{self.subnet}.{self._own[side]}"

    def ns(self, side: str) -> str:
        return self.a if side == "a" else self.b

    def ifname(self, side: str) -> str:
        return self.a_if if side == "a" else self.b_if

    def exec_prefix(self, side: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns(side)]

    @classmethod
    def create(cls, sweep: bool = True, mtu: int = 0) -> VethPair:
        ok, why = available()
        if not ok:
            raise NetnsError(why)
        if sweep:
            sweep_stale()
        _install_hooks()
        k = next(_counter)
        pid = os.getpid()
        subnet = f"10.{200 + pid % 50}.{(pid // 50 + k) % 250}"
        pair = cls(f"{PREFIX}{pid}n{k}a", f"{PREFIX}{pid}n{k}b", subnet)
        _live.append(pair)
        try:
            pair._setup(mtu)
        except BaseException:
            pair.close()
            raise
        return pair

    def _setup(self, mtu: int = 0) -> None:
        """mtu: both ends' (0 = veth's 1500)."""
        _ip("netns", "add", self.a)
        _ip("netns", "add", self.b)
        _ip("link", "add", self.a_if, "netns", self.a, "type", "veth",
            "peer", self.b_if, "netns", self.b)
        self.mtu = mtu or 1500
        for side, ip in (("a", self.a_ip), ("b", self.b_ip)):
            ns, dev = self.ns(side), self.ifname(side)
            if mtu:
                _ip("-n", ns, "link", "set", dev, "mtu", str(mtu))
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")

    def set_tx_offload(self, on: bool) -> None:
        """The kernel's frames over veth are CHECKSUM_PARTIAL (and TSO super-frames) unless
        TX offload is off: off when a user-space stack talks to a kernel peer, as a real
        NIC would deliver finished frames; on (the veth default) otherwise."""
        if shutil.which("ethtool") is None:
            return
        for side in ("a", "b"):
            subprocess.run([*self.exec_prefix(side), "ethtool", "-K", self.ifname(side),
                            "tx", "on" if on else "off"], capture_output=True, timeout=30)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for name in (self.a, self.b):
            _delete(name)
        with contextlib.suppress(ValueError):
            _live.remove(self)

    def __enter__(self) -> VethPair:
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def describe(self) -> dict[str, Any]:
        return {"namespaces": [self.a, self.b], "veth": [self.a_if, self.b_if],
                "kernel_ips": [self.a_ip, self.b_ip], "mtu": self.mtu}


def in_ns(pair: VethPair | None, side: str, cmd: Sequence[str]) -> list[str]:
    """`cmd` run inside the pair's namespace `side` (as is without a pair)."""
    return list(cmd) if pair is None else [*pair.exec_prefix(side), *cmd]
