"""The link under a stack: the sim wire's endpoint, or a real NIC (af_packet, af_xdp).

Real links exist in `pollnet._pncore` only when it was built with them
(native/build_links.py); asking for one that is not there raises BackendUnavailable
naming what to install.
"""

from __future__ import annotations

import fcntl
import gc
import os
import socket
import struct
import threading
import weakref

from pollnet.backends.efvi.core import binding as _core
from pollnet.backends.efvi.link.base import ERRLEN, IN_USE, AddressKey, Link
from pollnet.backends.efvi.link.sim import SimWire
from pollnet.config import EfviOptions
from pollnet.errors import BackendUnavailable, ConfigError

_XDP_MODES = {"auto": "PN_XDP_MODE_AUTO", "native": "PN_XDP_MODE_NATIVE",
              "generic": "PN_XDP_MODE_GENERIC", "zerocopy": "PN_XDP_MODE_ZEROCOPY"}
_REAL = {"af_packet": "pn_af_packet_link_create", "af_xdp": "pn_af_xdp_link_create",
         "efvi": "pn_efvi_link_create"}
_NEEDS = {
    "af_packet": "a C compiler",
    "af_xdp": "libxdp-dev libbpf-dev clang (scripts/install.sh installs them)",
    "efvi": "AMD/Solarflare Onload's ef_vi (libciul)",
}


def open_link(options: EfviOptions, *, wire: SimWire | None, local_ip: str | None) -> Link:
    """The link the options (or the wire to join) ask for, with pcap applied."""
    if wire is not None:
        link = wire._open_link(local_ip or options.local_ip or None)
    else:
        link = _open_real(options, local_ip or options.local_ip)
    if options.pcap:
        try:
            link.record(options.pcap)
        except BaseException:
            link.close()
            raise
    return link


def _open_real(options: EfviOptions, local_ip: str) -> Link:
    ffi, lib = _core.require()
    fn_name = _REAL[options.link]
    if not _core.has(fn_name):
        raise BackendUnavailable(
            "efvi",
            f"link = {options.link!r} is not in this build of pollnet._pncore "
            f"(native/build_links.py did not find what it needs); install "
            f"{_NEEDS[options.link]} and rebuild: pip install -e .; or use link = \"af_xdp\", "
            "\"af_packet\" (any Linux NIC) or \"sim\"",
        )
    ifname = options.interface
    try:
        socket.if_nametoindex(ifname)  # in the namespace the link opens in
    except OSError:
        raise ConfigError(
            f"efvi.interface = {ifname!r}: no such network interface here (`ip link` lists "
            "them; NETNS/IF names one in a network namespace)"
        ) from None
    ip, mask = _interface_address(ifname)
    if local_ip:
        ip = _core.ip_to_int(local_ip)
    if not ip:
        raise BackendUnavailable(
            "efvi", f"interface {ifname!r} has no IPv4 address: set efvi.local_ip in the config"
        )
    key = (_netns_id(), ifname, ip, options.queue)
    if any(k[:2] == key[:2] and _held(k) for k in list(IN_USE)):
        # Another of our stacks is on this interface. If nothing can reach it any more (a
        # reference cycle, a traceback), collecting it closes its link and frees its address
        # and (af_xdp) the interface queue before we take them.
        gc.collect()
    if _held(key):
        raise ConfigError(
            f"efvi.local_ip = {_core.int_to_ip(ip)!r} on {ifname!r}, queue {options.queue}: "
            "another efvi stack of this process has that address there already; each "
            "client or server stack needs an address of its own on an interface, or a "
            "queue of its own (efvi.queue, with efvi.shards), or make several connections "
            "from one TcpClient with max_conns")
    params = ffi.new("pn_real_link_params *")
    name = ffi.new("char[]", ifname.encode())
    params.ifname = name
    params.ring_frames = 0
    params.mode = getattr(lib, _XDP_MODES[options.xdp_mode])
    params.queue = options.queue
    params.shards = options.shards
    params.own_ip = 0 if _kernel_has(_core.int_to_ip(ip)) else 1
    if params.own_ip and hasattr(params, "local_ip"):
        params.local_ip = ip
    err = ffi.new("char[]", ERRLEN)
    ptr = getattr(lib, fn_name)(params, err, ERRLEN)
    if ptr == ffi.NULL:
        raise BackendUnavailable(
            "efvi", f"cannot open the {options.link} link on {ifname!r}: {_core.c_string(err)}"
        )
    link = Link(ptr, options.link, f"on {ifname}", local_ip=ip, netmask=mask or 0xFFFFFF00,
                gateway_ip=_default_gateway(ifname))
    link._address_key = key
    IN_USE[key] = weakref.ref(link)
    return link


def _netns_id() -> int:
    """This thread's network namespace (links open in the one the thread is in)."""
    return os.stat(f"/proc/self/task/{threading.get_native_id()}/ns/net").st_ino


def _held(key: AddressKey) -> bool:
    ref = IN_USE.get(key)
    link = ref() if ref is not None else None
    return link is not None and link.ptr is not None


def _interface_address(ifname: str) -> tuple[int, int]:
    """(IPv4 address, netmask) of an interface as host-order ints; (0, 0) if none."""
    siocgifaddr, siocgifnetmask = 0x8915, 0x891B
    req = struct.pack("256s", ifname.encode()[:15])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            addr = fcntl.ioctl(s.fileno(), siocgifaddr, req)[20:24]
            mask = fcntl.ioctl(s.fileno(), siocgifnetmask, req)[20:24]
        except OSError:
            return 0, 0
    return int.from_bytes(addr, "big"), int.from_bytes(mask, "big")


def _kernel_has(ip: str) -> bool:
    """Whether the kernel owns this address here (then it answers ARP for it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((ip, 0))
        except OSError:
            return False
    return True


def _default_gateway(ifname: str) -> int:
    try:
        with open("/proc/net/route") as f:
            rows = [line.split() for line in f.readlines()[1:]]
    except OSError:
        return 0
    for row in rows:
        if len(row) > 2 and row[0] == ifname and row[1] == "00000000":
            return int.from_bytes(bytes.fromhex(row[2]), "little")
    return 0
