"""The sim link: an in-process Ethernet wire with a virtual clock and seeded faults.

Every stack on a wire polls at the wire's clock (`wire.now_ns`) unless given a time;
efvi/sim_driver.py polls them all and jumps the clock to the earliest frame arrival or
timer (its docstring shows a whole run). Runs are reproducible from `seed`.
"""

from __future__ import annotations

import ipaddress
import weakref
from typing import Any, Protocol

from pollnet.backends.efvi.core import binding as _core
from pollnet.backends.efvi.link.base import ERRLEN, Link
from pollnet.config import SimOptions


class SimHost(Protocol):
    """What the wire needs of a stack on it (an efvitcp Endpoint) for static ARP."""

    @property
    def local_ip(self) -> str: ...
    @property
    def mac(self) -> bytes: ...
    def add_neighbour(self, ip: str, mac: bytes) -> None: ...

NEVER = 0xFFFFFFFFFFFFFFFF
START_NS = 1_000_000_000  # virtual time starts at 1 s (0 means "read the clock" to pn_poll)

# Frame offsets (Ethernet + IPv4 without options) for scripted drops.
_IP_SRC = 14 + 12
_TCP_FLAGS = 14 + 20 + 13
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


class SimWire:
    """A simulated Ethernet segment. Faults come from `SimOptions` (the `[efvi.sim]`
    config section) with keyword overrides; `pcap` records every frame put on the wire.

    Hosts joining get addresses 10.0.0.1, 10.0.0.2, ... (netmask 255.255.0.0) unless
    they name one. `static_arp=True` gives every host a neighbour entry for every other
    instead of resolving with ARP (keeps lossy tests about TCP, not ARP retries).
    """

    def __init__(
        self,
        options: SimOptions | None = None,
        *,
        seed: int | None = None,
        loss: float | None = None,
        duplicate: float | None = None,
        reorder: float | None = None,
        corrupt: float | None = None,
        delay_us: int | None = None,
        jitter_us: int | None = None,
        bandwidth_mbps: float | None = None,
        reorder_delay_us: int | None = None,
        queue_frames: int = 0,
        pcap: str = "",
        static_arp: bool = False,
    ) -> None:
        ffi, lib = _core.require()
        given = {
            "seed": seed, "loss": loss, "duplicate": duplicate, "reorder": reorder,
            "corrupt": corrupt, "delay_us": delay_us, "jitter_us": jitter_us,
            "bandwidth_mbps": bandwidth_mbps,
        }
        base = (options or SimOptions()).model_dump()
        base.update({k: v for k, v in given.items() if v is not None})
        opts = SimOptions.model_validate(base)
        self.options = opts
        self.seed = opts.seed
        p = ffi.new("pn_sim_params *")
        lib.pn_sim_params_default(p)
        p.seed = opts.seed
        p.loss = opts.loss
        p.duplicate = opts.duplicate
        p.reorder = opts.reorder
        p.corrupt = opts.corrupt
        p.delay_ns = opts.delay_us * 1000
        p.jitter_ns = opts.jitter_us * 1000
        p.bandwidth_bps = int(opts.bandwidth_mbps * 1_000_000)
        if reorder_delay_us is not None:
            p.reorder_delay_ns = reorder_delay_us * 1000
        p.queue_frames = queue_frames
        err = ffi.new("char[]", ERRLEN)
        ptr = lib.pn_sim_wire_create(p, err, ERRLEN)
        if ptr == ffi.NULL:
            raise _core.core_error(lib.PN_EINVAL, "creating the sim wire", _core.c_string(err))
        self._ptr: Any = ptr
        self._finalizer = weakref.finalize(self, lib.pn_sim_wire_destroy, ptr)
        self._stats = ffi.new("pn_sim_stats *")
        self.now_ns = START_NS
        self.netmask = 0xFFFF0000
        self.static_arp = static_arp
        self._next_host = 1
        self._hosts: dict[int, bytes] = {}  # ip -> mac of every link opened on the wire
        self._members: weakref.WeakSet[SimHost] = weakref.WeakSet()
        if pcap:
            rc = lib.pn_sim_wire_pcap(ptr, pcap.encode(), err, ERRLEN)
            if rc < 0:
                raise _core.core_error(rc, f"recording the sim wire to {pcap}",
                                       _core.c_string(err))

    # ------------------------------------------------------------ hosts

    def _open_link(self, ip: str | None) -> Link:
        ffi, lib = _core.require()
        if ip:
            addr = _core.ip_to_int(ip)
        else:
            addr = 0x0A000000 + self._next_host
            self._next_host += 1
            while addr in self._hosts:
                addr += 1
                self._next_host += 1
        if addr in self._hosts:
            raise ValueError(f"{_core.int_to_ip(addr)} is already on this sim wire")
        mac = b"\x02\x00" + addr.to_bytes(4, "big")
        err = ffi.new("char[]", ERRLEN)
        ptr = lib.pn_sim_link_create(self._ptr, mac, err, ERRLEN)
        if ptr == ffi.NULL:
            raise _core.core_error(lib.PN_ELINK, "joining the sim wire", _core.c_string(err))
        self._hosts[addr] = mac
        return Link(ptr, "sim", f"as {_core.int_to_ip(addr)}", local_ip=addr,
                    netmask=self.netmask, keepalive=self)

    def _join(self, endpoint: SimHost, link: Link) -> None:
        self._members.add(endpoint)
        if not self.static_arp:
            return
        for other in self._members:
            if other is endpoint:
                continue
            endpoint.add_neighbour(other.local_ip, other.mac)
            other.add_neighbour(endpoint.local_ip, endpoint.mac)

    def _leave(self, endpoint: SimHost) -> None:
        self._members.discard(endpoint)
        self._hosts.pop(_core.ip_to_int(endpoint.local_ip), None)

    # ------------------------------------------------------------ faults and counters

    def drop_nth(self, nth: int, offset: int, match: bytes, mask: bytes | None = None) -> int:
        """Drop the nth (1-based) frame from now on whose bytes at `offset` equal `match`
        under `mask` (None: exact). Returns the rule id."""
        if mask is not None and len(mask) != len(match):
            raise ValueError("drop_nth: mask and match must have the same length")
        rc = int(_core.lib.pn_sim_wire_drop_nth(
            self._ptr, nth, offset, match, mask if mask is not None else _core.ffi.NULL,
            len(match)))
        if rc < 0:
            raise _core.core_error(rc, f"drop_nth({nth}, {offset}, ...)")
        return rc

    def drop_tcp(self, nth: int = 1, *, flags: int, mask: int | None = None,
                 src: str | None = None) -> int:
        """Drop the nth TCP segment (from now on) whose flags byte has `flags` under
        `mask` (default: exactly `flags`), optionally only from host `src`."""
        fmask = 0xFF if mask is None else mask
        gap = _TCP_FLAGS - _IP_SRC - 4
        src_bytes = ipaddress.IPv4Address(src).packed if src else bytes(4)
        match = src_bytes + bytes(gap) + bytes([flags & fmask])
        mbytes = (b"\xff" * 4 if src else bytes(4)) + bytes(gap) + bytes([fmask])
        return self.drop_nth(nth, _IP_SRC, match, mbytes)

    def stats(self) -> dict[str, int]:
        """Frames sent, delivered, dropped, duplicated, reordered, corrupted, queue_drops."""
        _core.lib.pn_sim_wire_stats(self._ptr, self._stats)
        return _core.struct_dict("pn_sim_stats", self._stats)

    def next_arrival_ns(self) -> int | None:
        t = int(_core.lib.pn_sim_wire_next_arrival(self._ptr))
        return None if t >= NEVER else t
