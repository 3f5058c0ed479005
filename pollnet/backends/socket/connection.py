"""A connection over a non-blocking kernel TCP socket."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from pollnet._fast import FAST
from pollnet.api import BytesLike, Peername
from pollnet.connection import ConnectionBase, byte_view
from pollnet.handler import checked_remaining
from pollnet.recvbuf import RecvBuffer, buffer_full_reason

_FLAGS = socket.MSG_NOSIGNAL  # a dead peer is an error return, never SIGPIPE
_FLAGS_MORE = socket.MSG_NOSIGNAL | socket.MSG_MORE


class PySockConnCore:
    """What the compiled `pollnet._pnfast.SockConnCore` holds and does, in Python: the base
    of SocketConnection where the extension is not used (pollnet._fast)."""

    __slots__ = ("_buf", "_connected", "_received", "_sent", "fd", "redeliver")

    _buf: RecvBuffer
    fd: int
    _connected: bool
    _received: bool
    _sent: bool
    redeliver: bool
    _send: Callable[..., int]

    if TYPE_CHECKING:  # SocketConnection's (the compiled base calls them too)
        def _read_slow(self, on_data: Callable[[ConnectionBase, memoryview], int]) -> None: ...
        def _shutdown(self, reason: str, errno_value: int = 0) -> None: ...

    def _attach(self, buf: RecvBuffer, fd: int) -> None:
        self._buf = buf
        self.fd = fd

    def read(self, on_data: Callable[[ConnectionBase, memoryview], int]) -> None:
        """One recv into the buffer, then hand kept + new bytes to the handler."""
        self._read_slow(on_data)

    def write(self, data: BytesLike, more: bool = False) -> bool:
        if type(data) is not bytes and type(data) is not bytearray:
            data = byte_view(data, "write")
        if not self._connected:
            return False
        flags = _FLAGS_MORE if more else _FLAGS
        send = self._send
        try:
            n = send(data, flags)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            self._shutdown("send error", exc.errno or 0)
            return False
        self._sent = True
        if n == len(data):
            return True
        # Partial: busy-retry the rest, as pollnet's write does.
        view = memoryview(data)[n:]
        while view:
            try:
                n = send(view, flags)
            except BlockingIOError:
                continue
            except OSError as exc:
                self._shutdown("send error", exc.errno or 0)
                return False
            view = view[n:]
        return True

    def write_some(self, data: BytesLike, more: bool = False) -> int:
        if type(data) is not bytes and type(data) is not bytearray:
            data = byte_view(data, "write_some")
        if not self._connected:
            return -1
        try:
            n = self._send(data, _FLAGS_MORE if more else _FLAGS)
        except BlockingIOError:
            return 0
        except OSError as exc:
            self._shutdown("send error", exc.errno or 0)
            return -1
        self._sent = True
        return n

    def write_nonblock(self, data: BytesLike, more: bool = False) -> bool:
        if type(data) is not bytes and type(data) is not bytearray:
            data = byte_view(data, "write_nonblock")
        if not self._connected:
            return False
        try:
            n = self._send(data, _FLAGS_MORE if more else _FLAGS)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            self._shutdown("send error", exc.errno or 0)
            return False
        if n == len(data):
            self._sent = True
            return True
        self._shutdown(f"send buffer full: write_nonblock sent {n} of {len(data)} bytes")
        return False


if TYPE_CHECKING:
    _SockBase = PySockConnCore
else:
    _SockBase = PySockConnCore if FAST is None else FAST.SockConnCore


class SocketConnection(_SockBase, ConnectionBase):
    __slots__ = ("_closed_queue", "_error", "_last_recv_ns", "_last_send_ns", "_peer",
                 "_recv_into", "_send", "_sock", "user_data")

    def __init__(
        self,
        sock: socket.socket,
        peer: Peername | None,
        buf: RecvBuffer,
        closed_queue: list[ConnectionBase],
        now_ns: int,
    ) -> None:
        super().__init__(closed_queue, peer, now_ns)
        self._sock = sock
        self._attach(buf, sock.fileno())
        # Bound once: the data path is then one attribute load and one call.
        self._send = sock.send
        self._recv_into = sock.recv_into
        # The handler raised or broke the contract: present the kept bytes again on the
        # next poll even if nothing new arrives (the owner polls this flag).
        self.redeliver = False

    def _release(self) -> None:
        # Closing the fd also removes it from the owner's epoll set.
        self._sock.close()

    def _read_slow(self, on_data: Callable[[ConnectionBase, memoryview], int]) -> None:
        """read(): the whole of it in Python (the compiled one comes here when bytes are
        kept from last time or presented again)."""
        buf = self._buf
        if not buf.tail:
            # The common case, nothing kept from last time: receive at the front and skip
            # the buffer's bookkeeping calls when the handler consumes everything.
            view = buf.view
            try:
                n = self._recv_into(view)
            except BlockingIOError:
                return
            except OSError as exc:
                self._shutdown("recv error", exc.errno or 0)
                return
            if n == 0:
                self._shutdown("remote close")
                return
            self._received = True
            buf.tail = n  # kept whole until the handler returns a valid count
            try:
                remaining = on_data(self, view if n == buf.size else view[:n])
            except BaseException:
                self.redeliver = True
                raise
            if not remaining:
                buf.tail = 0
            elif type(remaining) is int and 0 < remaining <= n:
                if self._connected and not buf.keep(remaining):
                    self._shutdown(buffer_full_reason(buf.size))
            else:
                self._check(remaining, n)
            return
        if self.redeliver:
            self.redeliver = False
            self._present(on_data, buf.view[buf.head:buf.tail])
            return
        try:
            n = self._recv_into(buf.room())
        except BlockingIOError:
            return
        except OSError as exc:
            self._shutdown("recv error", exc.errno or 0)
            return
        if n == 0:
            self._shutdown("remote close")
            return
        self._received = True
        self._present(on_data, buf.fill(n))

    def _present(self, on_data: Callable[[ConnectionBase, memoryview], int],
                 data: memoryview) -> None:
        """Kept + new bytes (already in the buffer) to the handler."""
        buf = self._buf
        try:
            remaining = on_data(self, data)
        except BaseException:
            self.redeliver = True
            raise
        size = len(data)
        if type(remaining) is not int or not 0 <= remaining <= size:
            remaining = self._check(remaining, size)
        if self._connected and not buf.keep(remaining):
            self._shutdown(buffer_full_reason(buf.size))

    def _keep_after(self, remaining: int, size: int) -> None:
        """The compiled read's handler kept `remaining` of the `size` bytes it got."""
        buf = self._buf
        buf.tail = size
        if self._connected and not buf.keep(remaining):
            self._shutdown(buffer_full_reason(buf.size))

    def _bad_return(self, remaining: object, size: int) -> None:
        """The compiled read's handler returned no plain int in 0..size."""
        self._buf.tail = size
        value = self._check(remaining, size)
        if value:
            self._keep_after(value, size)

    def _check(self, remaining: object, size: int) -> int:
        """A return value off the fast path: None is 0; anything invalid keeps every
        byte for the next poll and raises."""
        try:
            value = checked_remaining(remaining, size)
        except Exception:
            self.redeliver = True
            raise
        if not value:
            self._buf.tail = self._buf.head = 0
        return value
