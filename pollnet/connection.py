"""The pollnet-level connection every backend builds on.

It owns what is the same everywhere: `user_data`, `last_error`, `peername`, the
exactly-once disconnect notice (a close only queues the connection; its owner's next
`poll()` calls `on_tcp_disconnect`), the idle-timeout stamps, and `write`/`write_nonblock`
expressed through the backend's `write_some`. A backend implements `write_some` and
`_release` (free the transport) and may override the writes with faster ones.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from pollnet.api import BytesLike, Peername


def byte_view(data: object, method: str) -> BytesLike:
    """`data` as something whose len() counts bytes (off the fast path: callers pass
    bytes and bytearray through themselves). A TypeError naming what `method` accepts
    for anything that is not a contiguous buffer."""
    try:
        view = memoryview(data)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"{method}() takes a bytes-like object (bytes, bytearray, memoryview or any "
            f"C-contiguous buffer), not {type(data).__name__!r}"
        ) from None
    if view.itemsize == 1 and view.ndim == 1:
        return view
    try:
        return view.cast("B")
    except TypeError:
        raise TypeError(
            f"{method}() takes a C-contiguous buffer; this {type(data).__name__} is not "
            "(copy it with bytes(data) first)"
        ) from None


def error_text(reason: str, errno_value: int = 0) -> str:
    """pollnet's `last_error`: the reason, plus the errno text when there is one."""
    if errno_value:
        return f"{reason}: {os.strerror(errno_value)} (errno {errno_value})"
    return reason


class ConnectionBase:
    """What every backend's pollnet connection does, without its storage: the slots are
    ConnectionSlots', or (efvi) partly those of a compiled base class."""

    if not TYPE_CHECKING:  # (mypy would take the empty tuple for the subclasses' slots)
        __slots__ = ()

    user_data: Any
    _closed_queue: list[ConnectionBase]
    _connected: bool
    _error: str
    _last_recv_ns: int
    _last_send_ns: int
    _peer: Peername | None
    _received: bool
    _sent: bool

    def __init__(
        self, closed_queue: list[ConnectionBase], peer: Peername | None, now_ns: int
    ) -> None:
        self.user_data: Any = None
        self._closed_queue = closed_queue
        self._peer = peer
        self._connected = True
        self._error = ""
        self._sent = False
        self._received = False
        self._last_send_ns = now_ns
        self._last_recv_ns = now_ns

    def __repr__(self) -> str:
        state = "connected" if self._connected else f"closed ({self._error})"
        return f"<{type(self).__name__} peer={self._peer} {state}>"

    @property
    def is_connected(self) -> bool:
        return self._connected

    @property
    def last_error(self) -> str:
        return self._error

    @property
    def peername(self) -> Peername | None:
        return self._peer

    def close(self, reason: str = "closed by application") -> None:
        self._shutdown(reason)

    def _shutdown(self, reason: str, errno_value: int = 0) -> None:
        """Close once: record why, free the transport, queue the disconnect notice."""
        if not self._connected:
            return
        self._connected = False
        self._error = error_text(reason, errno_value)
        self._release()
        self._closed_queue.append(self)

    def _release(self) -> None:
        raise NotImplementedError

    def write_some(self, data: BytesLike, more: bool = False) -> int:
        raise NotImplementedError

    def write(self, data: BytesLike, more: bool = False) -> bool:
        view = memoryview(byte_view(data, "write"))
        total = view.nbytes
        done = 0
        while True:
            n = self.write_some(view[done:] if done else view, more)
            if n < 0:
                return False
            done += n
            if done >= total:
                return True

    def write_nonblock(self, data: BytesLike, more: bool = False) -> bool:
        if type(data) is not bytes and type(data) is not bytearray:
            data = byte_view(data, "write_nonblock")
        n = self.write_some(data, more)
        if n == len(data):
            return True
        if n >= 0:
            self._shutdown("send buffer full (write_nonblock could not send all)")
        return False


class ConnectionSlots(ConnectionBase):
    """ConnectionBase with its storage (the socket and tcpdirect connections)."""

    __slots__ = (
        "_closed_queue",
        "_connected",
        "_error",
        "_last_recv_ns",
        "_last_send_ns",
        "_peer",
        "_received",
        "_sent",
        "user_data",
    )
