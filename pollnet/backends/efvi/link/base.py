"""The link under a stack as Python sees it: an open `pn_link` and its addressing.

Opening one is link/open.py's (a real NIC) or link/sim.py's (the sim wire).
"""

from __future__ import annotations

import weakref
from typing import Any

from pollnet.backends.efvi.core import binding as _core

ERRLEN = 256  # the error text buffer every pn_*_create fills
# (network namespace, interface, address, RX queue): what one real link holds
AddressKey = tuple[int, str, int, int]

class Link:
    """An open `pn_link` and the addressing the stack on it uses."""

    def __init__(self, ptr: Any, kind: str, where: str, *, local_ip: int, netmask: int,
                 gateway_ip: int = 0, keepalive: object = None) -> None:
        self.ptr: Any = ptr
        self.kind = kind
        self.where = where
        self.local_ip = local_ip
        self.netmask = netmask
        self.gateway_ip = gateway_ip
        self.mac = bytes(_core.ffi.buffer(ptr.mac, 6))
        self.mtu = int(ptr.mtu)
        self._keepalive = keepalive  # the sim wire outlives its links
        self._address_key: AddressKey | None = None  # its entry in IN_USE

    def describe(self) -> str:
        return f"the {self.kind} link {self.where}"

    def last_error(self) -> str:
        return "" if self.ptr is None else _core.c_string(self.ptr.err)

    def close(self) -> None:
        if self.ptr is not None:
            _core.lib.pn_link_destroy(self.ptr)
            self.ptr = None
            self._keepalive = None
        key = self._address_key
        if key is not None and (ref := IN_USE.get(key)) is not None and ref() is self:
            del IN_USE[key]

    def stats(self) -> dict[str, int]:
        """A real link's counters (`pn_real_link_stats`); {} for other links."""
        if self.ptr is None or self.kind == "sim" or not _core.has("pn_real_link_stats_get"):
            return {}
        out = _core.ffi.new("pn_real_link_stats *")
        if _core.lib.pn_real_link_stats_get(self.ptr, out) < 0:
            return {}
        return _core.struct_dict("pn_real_link_stats", out)

    def record(self, path: str) -> None:
        """Write every frame in and out of this link to a pcap file."""
        err = _core.ffi.new("char[]", ERRLEN)
        rc = _core.lib.pn_link_pcap(self.ptr, path.encode(), err, ERRLEN)
        if rc < 0:
            raise _core.core_error(rc, f"recording {self.describe()} to {path}",
                                   _core.c_string(err))


# The real links this process has open, by (network namespace, interface, address, RX
# queue): two stacks on one address and queue would take each other's segments for
# strangers' and reset them; on different queues (shards) each gets its queue's flows.
IN_USE: dict[AddressKey, weakref.ref[Link]] = {}
