"""`pollnet config check --live`: does this machine have what a valid config needs?

Looks only, as `pollnet info` does (binds a throwaway socket at most): the addresses a
socket config binds, the interface and link mode an efvi config names, the library and
huge pages TCPDirect needs. Each problem is one line naming the setting, its value, what
is wrong and the fix.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

from pollnet.config import AnyConfig, EfviConfig, TcpdirectConfig


def problems(cfg: AnyConfig) -> list[str]:
    """Every reason the config cannot run here (none: it can, as far as looking tells)."""
    out: list[str] = []
    for what, ip in (("server.listen_ip", cfg.server.listen_ip),
                     ("client.local_ip", cfg.client.local_ip)):
        if ip and cfg.backend != "efvi":  # efvi addresses are the stack's, not the kernel's
            out += _bindable(what, ip)
    if isinstance(cfg, EfviConfig):
        out += _efvi(cfg)
    elif isinstance(cfg, TcpdirectConfig):
        out += _tcpdirect(cfg)
    else:
        for what, name in (("client.interface", cfg.client.interface),
                           ("server.interface", cfg.server.interface)):
            if name and not Path("/sys/class/net", name).exists():
                out.append(f"{what} = {name!r}: no such interface here (ip link)")
    return out


def _bindable(what: str, ip: str) -> list[str]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((ip, 0))
        except OSError as exc:
            return [f"{what} = {ip!r}: cannot bind it ({exc.strerror}): use an address of "
                    "this machine (ip addr) or 0.0.0.0"]
    return []


def _efvi(cfg: EfviConfig) -> list[str]:
    from pollnet.probe import interface_probes, native_core

    core = native_core()
    if not core.available:
        return [f"backend = 'efvi': {core.detail}"]
    efvi = cfg.efvi
    if efvi.link == "sim":
        return []
    out: list[str] = []
    for role, own in (("client", cfg.client.interface), ("server", cfg.server.interface)):
        what, name = (f"{role}.interface", own) if own else ("efvi.interface", efvi.interface)
        netns, _, ifname = name.rpartition("/")
        with _inside(netns) as entered:
            if not entered:
                out.append(f"{what} = {name!r}: no network namespace {netns!r} "
                           f"(ip netns add {netns})")
                continue
            (probe,) = interface_probes([ifname])
        modes = [m for m in probe.modes if m.link == efvi.link]
        wanted = [m for m in modes if efvi.link != "af_xdp" or efvi.xdp_mode == "auto"
                  or m.mode == efvi.xdp_mode]
        if not any(m.works for m in wanted):
            why = "; ".join(sorted({m.why for m in wanted if m.why})) or "it does not work"
            mode = f", xdp_mode = {efvi.xdp_mode!r}" if efvi.link == "af_xdp" else ""
            line = f"{what} = {name!r} (link = {efvi.link!r}{mode}): {why}"
            if line not in out:
                out.append(line)
    return out


@contextlib.contextmanager
def _inside(netns: str) -> Iterator[bool]:
    """In network namespace `netns` ("" = here) for the body; False if it does not exist."""
    if not netns:
        yield True
        return
    from pollnet.backends.efvi.adapter.base import in_netns

    if not Path(netns if netns.startswith("/") else f"/run/netns/{netns}").exists():
        yield False
        return
    with in_netns(netns):
        yield True


def _tcpdirect(cfg: TcpdirectConfig) -> list[str]:
    from pollnet.probe import probe_all

    out: list[str] = []
    lib = cfg.tcpdirect.library
    probe = next(p for p in probe_all(lib) if p.name == "tcpdirect")
    if not probe.available:
        out.append(f"tcpdirect.library = {lib!r}: {probe.detail}")
    pages = Path("/proc/sys/vm/nr_hugepages")
    if pages.exists() and int(pages.read_text().strip() or 0) == 0:
        out.append("huge pages: /proc/sys/vm/nr_hugepages = 0, and TCPDirect allocates its "
                   "buffers from 2 MB huge pages: echo 512 > /proc/sys/vm/nr_hugepages")
    for what, name in (("client.interface", cfg.client.interface),
                       ("server.interface", cfg.server.interface)):
        if name and not Path("/sys/class/net", name).exists():
            out.append(f"{what} = {name!r}: no such interface here (ip link)")
    return out
