"""The owner of one C stack and its link, shared by an endpoint and its connections.

The stack is destroyed (then its link) when the endpoint is closed or when nothing refers
to this object any more -- so a Connection kept after its endpoint was dropped can never
reach freed memory: its calls fail with ConnectionClosedError instead.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any, Protocol

from pollnet.backends.efvi.core import binding as _core


class Link(Protocol):
    """What a stack needs of its link (link.base.Link), named here so the core layer
    imports nothing above it."""

    local_ip: int

    def close(self) -> None: ...

BytesLike = bytes | bytearray | memoryview
_IOV_PREALLOC = 64


def _destroy(lib: Any, stack: Any, link: Link) -> None:
    lib.pn_stack_destroy(stack)
    link.close()


class StackHandle:
    """`stack` (pn_stack *), `lib`, and the scratch structs calls need, made once."""

    __slots__ = ("__weakref__", "_finalizer", "conn_info", "iov", "lib", "link", "local_ip",
                 "stack", "user_timer_cnt")

    def __init__(self, stack: Any, link: Link, user_timer_cnt: int) -> None:
        ffi, lib = _core.require()
        self.stack: Any = stack
        self.lib: Any = lib
        self.link = link
        self.local_ip = _core.int_to_ip(link.local_ip)
        self.user_timer_cnt = user_timer_cnt
        self.conn_info: Any = ffi.new("pn_conn_info *")
        self.iov: Any = ffi.new("pn_iovec[]", _IOV_PREALLOC)
        self._finalizer = weakref.finalize(self, _destroy, lib, stack, link)

    @property
    def alive(self) -> bool:
        return self._finalizer.alive

    def destroy(self) -> None:
        self._finalizer()

    def sendv(self, conn_id: int, buffers: Iterable[BytesLike], more: bool) -> int:
        ffi = _core.ffi
        keep = [ffi.from_buffer(b) for b in buffers]  # alive until pn_sendv returns
        iov = self.iov if len(keep) <= _IOV_PREALLOC else ffi.new("pn_iovec[]", len(keep))
        for i, b in enumerate(keep):
            iov[i].base = b
            iov[i].len = len(b)
        rc: int = self.lib.pn_sendv(self.stack, conn_id, iov, len(keep), more)
        return rc
