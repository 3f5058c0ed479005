"""What this machine can run: each backend and efvi link, and if not, why not.

Probes only look (import, open and close a socket, load a library); they change nothing.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

AF_XDP = getattr(socket, "AF_XDP", 44)  # Python's socket module does not name it


@dataclass(frozen=True)
class Probe:
    name: str
    available: bool
    detail: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def native_core() -> Probe:
    try:
        importlib.import_module("pollnet._pncore")
    except ImportError as exc:
        return Probe(
            "native core (pollnet._pncore)",
            False,
            f"not built ({exc}); build it with `pip install -e .` (needs a C compiler)",
        )
    return Probe("native core (pollnet._pncore)", True, "built")


def is_root() -> Probe:
    root = os.geteuid() == 0
    return Probe("root", root, "running as root" if root else f"uid {os.geteuid()}, not root")


def _raw_socket(family: int, kind: int, what: str) -> tuple[bool, str]:
    try:
        sock = socket.socket(family, kind, 0)
    except PermissionError:
        return False, f"{what} needs CAP_NET_RAW (run as root)"
    except OSError as exc:
        return False, f"{what} unsupported here: {exc.strerror or exc}"
    sock.close()
    return True, f"{what} socket opens"


def solarflare_interfaces() -> list[str]:
    found = []
    for dev in sorted(Path("/sys/class/net").glob("*")):
        driver = dev / "device" / "driver"
        try:
            if driver.resolve().name in ("sfc", "sfc_ef100", "xilinx_efct"):
                found.append(dev.name)
        except OSError:
            continue
    return found


def _library(name: str) -> tuple[bool, str]:
    try:
        ctypes.CDLL(name)
    except OSError as exc:
        return False, f"{name} does not load ({exc})"
    return True, f"{name} loads"


def efvi_build_info() -> str | None:
    """What the compiled core's efvi link runs on (pn_efvi_build_info()): Onload's ef_vi,
    pollnet's look-alike, or "not built: <why>". None without a core that says."""
    try:
        mod = importlib.import_module("pollnet._pncore")
    except ImportError:
        return None
    fn = getattr(mod.lib, "pn_efvi_build_info", None)
    if fn is None:
        return None
    text: bytes = mod.ffi.string(fn())
    return text.decode(errors="replace")


def probe_all(tcpdirect_library: str = "libonload_zf.so") -> list[Probe]:
    core = native_core()
    root = is_root()
    probes = [
        Probe("socket", True, "kernel TCP through non-blocking sockets: always available"),
        core,
        root,
    ]
    need_core = "" if core.available else "needs the native core; "
    probes.append(
        Probe(
            "efvi link=sim",
            core.available,
            "simulated wire, in-process" if core.available else "needs the native core",
        )
    )
    ok, why = _raw_socket(socket.AF_PACKET, socket.SOCK_RAW, "AF_PACKET")
    probes.append(Probe("efvi link=af_packet", core.available and ok, need_core + why))
    ok, why = _raw_socket(AF_XDP, socket.SOCK_RAW, "AF_XDP")
    probes.append(Probe("efvi link=af_xdp", core.available and ok, need_core + why))
    _, lib_why = _library("libciul.so.1")  # informative: the link may hold libciul1.a
    nics = solarflare_interfaces()
    nic_why = f"Solarflare NICs: {', '.join(nics)}" if nics else "no Solarflare NIC found"
    build = efvi_build_info()
    built = build is not None and not build.startswith("not built")
    shim = build is not None and build.startswith("efvi_shim")
    build_why = f"link: {build}; " if build is not None else ""
    probes.append(
        Probe(
            "efvi link=efvi",
            core.available and built and (shim or bool(nics)),
            f"{need_core}{build_why}{lib_why}; {nic_why}",
        )
    )
    ok, why = _library(tcpdirect_library)
    hint = "" if ok else "; install AMD/Solarflare Onload with TCPDirect"
    probes.append(Probe("tcpdirect", ok, why + hint))
    return probes
