"""What this machine can run: each backend and efvi link, and if not, why not.

Probes only look (import, open and close a socket, load a library, read sysfs, ethtool get
ioctls); they change nothing. `interface_probes()` says it per interface: which links and
modes can run there, and why not.
"""

from __future__ import annotations

import ctypes
import fcntl
import importlib
import json
import os
import socket
import struct
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

AF_XDP = getattr(socket, "AF_XDP", 44)  # Python's socket module does not name it


@dataclass(frozen=True)
class Probe:
    name: str
    available: bool
    detail: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _pncore() -> Any:
    """The compiled core as the efvi backend loads it (POLLNET_CORE_MODULE honoured);
    ImportError naming why when it is not there."""
    core = importlib.import_module("pollnet.backends.efvi.core.binding")
    if core.lib is None:
        raise ImportError(core.LOAD_ERROR)
    return core


def native_core() -> Probe:
    try:
        _pncore()
    except ImportError as exc:
        return Probe(
            "native core (pollnet._pncore)",
            False,
            f"not built ({exc}); build it with `pip install -e .` (needs a C compiler)",
        )
    return Probe("native core (pollnet._pncore)", True, "built")


def fast_path() -> Probe:
    """The efvi backend's per-message path: compiled (pollnet._pnfast) or Python, and why."""
    try:
        fast = importlib.import_module("pollnet.backends.efvi.core.fast")
    except ImportError as exc:
        return Probe("efvi per-message path", False, f"Python (the core does not load: {exc})")
    return Probe("efvi per-message path", fast.FAST is not None, str(fast.describe()))


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
        mod = _pncore()
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
        fast_path(),
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


# ------------------------------------------------------------------ per interface

SIOCETHTOOL = 0x8946
SIOCGIFADDR = 0x8915
_ETHTOOL_GDRVINFO = 0x00000003
_ETHTOOL_GFLAGS = 0x00000025
_ETHTOOL_GGRO = 0x0000002B
_ETH_FLAG_LRO = 1 << 15
_ETH_FLAG_NTUPLE = 1 << 27
_XDP_HEADROOM = 256  # the af_xdp link's UMEM headroom (link_af_xdp.c)
_AF_XDP_FRAME = 4096  # the largest frame_size the af_xdp link takes

# Drivers with native XDP (ndo_bpf) and with AF_XDP zero-copy, in mainline Linux 6.x.
# Informative: the link tries and says why when a driver refuses.
NATIVE_XDP_DRIVERS = frozenset({
    "veth", "virtio_net", "tun", "netdevsim", "ixgbe", "ixgbevf", "i40e", "ice", "igb",
    "igc", "mlx4_en", "mlx5_core", "bnxt_en", "ena", "nfp", "qede", "sfc", "stmmac",
    "fec", "mvneta", "mvpp2", "nicvf", "hv_netvsc", "xen-netfront", "bonding", "gve",
    "atlantic", "cpsw", "lan966x-switch", "dpaa2-eth", "enetc", "fsl_dpaa_eth", "octeontx2",
    "tsnep", "bcmgenet", "mana", "idpf",
})
ZEROCOPY_DRIVERS = frozenset({
    "ixgbe", "i40e", "ice", "igb", "igc", "mlx5_core", "stmmac", "gve", "dpaa2-eth",
    "enetc", "tsnep", "octeontx2", "idpf",
})


@dataclass(frozen=True)
class LinkMode:
    """One way the efvi backend could run on an interface."""

    link: str   # af_packet | af_xdp
    mode: str   # own_ip | shared | native | generic | zerocopy
    works: bool
    why: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class InterfaceProbe:
    """What this interface is and which links and modes can run on it, and why not."""

    name: str
    driver: str
    up: bool
    mtu: int
    ipv4: str
    rx_queues: int
    gro_or_lro: bool | None   # None: the driver does not say
    ntuple: bool
    xdp_program: bool | None  # an XDP program someone attached; None: unknown
    modes: tuple[LinkMode, ...]

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["modes"] = [m.as_dict() for m in self.modes]
        return d


def _ethtool(fd: int, ifname: str, buf: bytearray) -> bool:
    ifr = struct.pack("16sP", ifname.encode()[:15], ctypes.addressof(
        (ctypes.c_char * len(buf)).from_buffer(buf)))
    try:
        fcntl.ioctl(fd, SIOCETHTOOL, ifr)
    except OSError:
        return False
    return True


def _ethtool_value(fd: int, ifname: str, cmd: int) -> int | None:
    buf = bytearray(struct.pack("II", cmd, 0))
    if not _ethtool(fd, ifname, buf):
        return None
    value: int = struct.unpack("II", buf)[1]
    return value


def _driver(fd: int, ifname: str) -> str:
    buf = bytearray(struct.pack("I", _ETHTOOL_GDRVINFO) + bytes(192))
    if _ethtool(fd, ifname, buf):
        return bytes(buf[4:36]).split(b"\0", 1)[0].decode(errors="replace")
    try:
        return (Path("/sys/class/net") / ifname / "device" / "driver").resolve(strict=True).name
    except OSError:
        return ""


def _ipv4(fd: int, ifname: str) -> str:
    try:
        out = fcntl.ioctl(fd, SIOCGIFADDR, struct.pack("16s16x", ifname.encode()[:15]))
    except OSError:
        return ""
    return socket.inet_ntoa(out[20:24])


def _xdp_attached(ifname: str) -> bool | None:
    try:
        r = subprocess.run(["ip", "-j", "-d", "link", "show", "dev", ifname],
                           capture_output=True, text=True, timeout=5, check=False)
        data = json.loads(r.stdout or "[]")
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    if not data:
        return None
    return "xdp" in data[0]


def _sys_int(ifname: str, leaf: str, default: int = 0) -> int:
    try:
        return int((Path("/sys/class/net") / ifname / leaf).read_text().strip(), 0)
    except (OSError, ValueError):
        return default


def core_has_bpf() -> tuple[bool, str]:
    """Whether the built core has the real af_xdp link and tc filter (libxdp/libbpf/clang
    at build time), not the stub: the real create call says "no parameters" to NULL."""
    try:
        mod = _pncore()
    except ImportError as exc:
        return False, f"the native core is not built ({exc})"
    fn = getattr(mod.lib, "pn_af_xdp_link_create", None)
    if fn is None:
        return False, "this core has no real links (native/build_links.py)"
    err = mod.ffi.new("char[]", 256)
    fn(mod.ffi.NULL, err, 256)
    text: str = mod.ffi.string(err).decode(errors="replace")
    if "no parameters" in text:
        return True, "af_xdp link and tc filter built"
    return False, text or "the af_xdp link is a stub (install libxdp-dev libbpf-dev clang)"


def _modes(name: str, *, ether: bool, up: bool, mtu: int, ipv4: str, driver: str,
           rxq: int, merges: bool | None, ntuple: bool, xdp: bool | None,
           packet_ok: tuple[bool, str], xdp_ok: tuple[bool, str],
           bpf: tuple[bool, str]) -> tuple[LinkMode, ...]:
    common: list[str] = []
    if not ether:
        common.append("not an Ethernet interface")
    if not up:
        common.append(f"down (ip link set dev {name} up)")
    gro = (f"GRO or LRO on (ethtool -K {name} gro off lro off)" if merges else "")
    noaddr = f"no IPv4 address on {name} to share (ip addr add ... dev {name})"

    def mode(link: str, m: str, extra: list[str], ok_why: str) -> LinkMode:
        why = [w for w in common + extra if w]
        return LinkMode(link, m, not why, "; ".join(why) if why else ok_why)

    pk = [] if packet_ok[0] else [packet_ok[1]]
    packet_mtu = [] if mtu + 14 + 64 <= 65536 else [f"MTU {mtu} too large"]
    out = [
        mode("af_packet", "own_ip", [*pk, *packet_mtu, gro],
             "own address the kernel does not have; every frame copied to the ring"),
        mode("af_packet", "shared", [*pk, *packet_mtu, gro,
                                     "" if bpf[0] else f"tc filter not built: {bpf[1]}",
                                     "" if ipv4 else noaddr],
             f"shares {ipv4 or 'the kernel address'}; our frames hidden from the kernel by tc"),
    ]
    xk = [] if xdp_ok[0] else [xdp_ok[1]]
    if not bpf[0]:
        xk.append(f"af_xdp not built: {bpf[1]}")
    if mtu + 14 + _XDP_HEADROOM > _AF_XDP_FRAME:
        xk.append(f"MTU {mtu} larger than a 4096-byte UMEM frame allows")
    if rxq > 1 and not ntuple:
        xk.append(f"{rxq} RX queues and no ntuple steering: unless RSS sends every flow to "
                  f"queue 0 (ethtool -X), use one queue (ethtool -L {name} combined 1) or "
                  f"ethtool -K {name} ntuple on")
    if xdp:
        xk.append("another XDP program is attached (never replaced)")
    native = driver in NATIVE_XDP_DRIVERS
    zc = driver in ZEROCOPY_DRIVERS
    big = ("; needs frame_size 4096 (MTU > 1778)" if mtu + 14 + _XDP_HEADROOM > 2048 else "")
    out += [
        mode("af_xdp", "native", [*xk, "" if native else
                                  f"driver {driver or '?'} not known to have native XDP"],
             f"driver {driver} has native XDP; copy mode" + big),
        mode("af_xdp", "generic", [*xk, gro], "generic (skb) XDP, copy mode" + big),
        mode("af_xdp", "zerocopy", [*xk, "" if zc else
                                    f"driver {driver or '?'} has no AF_XDP zero-copy"],
             f"driver {driver} has zero-copy" + big),
        mode("af_xdp", "shared", [*xk, "" if ipv4 else noaddr],
             f"shares {ipv4}; only our flows' frames steered to us"),
    ]
    return tuple(out)


def interface_probes(names: list[str] | None = None) -> list[InterfaceProbe]:
    """Each interface of this network namespace (or those named): which links and modes
    can run on it and, where one cannot, why and the fix. Looks only (sysfs, ethtool
    get ioctls, `ip -d link`): nothing is attached or changed."""
    core = native_core()
    packet_ok = _raw_socket(socket.AF_PACKET, socket.SOCK_RAW, "AF_PACKET")
    xdp_ok = _raw_socket(AF_XDP, socket.SOCK_RAW, "AF_XDP")
    if not core.available:
        packet_ok = xdp_ok = (False, core.detail)
    bpf = core_has_bpf()
    found = sorted(p.name for p in Path("/sys/class/net").iterdir() if p.is_dir()) \
        if Path("/sys/class/net").is_dir() else []
    if names:
        found = [n for n in found if n in names] + [n for n in names if n not in found]
    out = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fd = s.fileno()
        for name in found:
            if not (Path("/sys/class/net") / name).exists():
                out.append(InterfaceProbe(name, "", False, 0, "", 0, None, False, None, (
                    LinkMode("af_packet", "any", False, f"no interface {name} (ip link)"),
                    LinkMode("af_xdp", "any", False, f"no interface {name} (ip link)"))))
                continue
            ether = _sys_int(name, "type") == 1
            up = bool(_sys_int(name, "flags") & 1)
            mtu = _sys_int(name, "mtu")
            gro = _ethtool_value(fd, name, _ETHTOOL_GGRO)
            flags = _ethtool_value(fd, name, _ETHTOOL_GFLAGS)
            merges = None if gro is None and flags is None else bool(
                gro or ((flags or 0) & _ETH_FLAG_LRO))
            ntuple = bool((flags or 0) & _ETH_FLAG_NTUPLE)
            rxq = len(list((Path("/sys/class/net") / name / "queues").glob("rx-*"))) or 1
            driver = _driver(fd, name)
            ipv4 = _ipv4(fd, name)
            xdp = _xdp_attached(name)
            modes = _modes(name, ether=ether, up=up, mtu=mtu, ipv4=ipv4, driver=driver,
                           rxq=rxq, merges=merges, ntuple=ntuple, xdp=xdp,
                           packet_ok=packet_ok, xdp_ok=xdp_ok, bpf=bpf)
            out.append(InterfaceProbe(name, driver, up, mtu, ipv4, rxq, merges, ntuple, xdp,
                                      modes))
    return out
