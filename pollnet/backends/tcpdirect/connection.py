"""A connection over a TCPDirect zocket (`struct zft`).

Receive is zero-copy: `zft_zc_recv` lends one packet of the library's memory, the handler
sees it as a memoryview, and only the bytes it leaves unconsumed are copied into this
connection's own `RecvBuffer`; from then on new packets are copied behind them until the
handler consumes everything. Every lent packet goes back with `zft_zc_recv_done` before
the zocket can be freed.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pollnet._fast import FAST
from pollnet.api import BytesLike, Peername
from pollnet.backends.tcpdirect import zf
from pollnet.backends.tcpdirect.stack import Stack
from pollnet.connection import ConnectionBase, byte_view
from pollnet.handler import checked_remaining
from pollnet.recvbuf import RecvBuffer, buffer_full_reason

_ffi = zf.ffi
_buffer = _ffi.buffer
_from_buffer = _ffi.from_buffer


_MORE = zf.MSG_MORE
# Send queue full, or no packet buffers right now: nothing sent, try again later.
_RETRY = (-errno.EAGAIN, -errno.ENOMEM)
# Packets taken from one zocket per poll, so one busy peer cannot starve the others.
MAX_PACKETS_PER_POLL = 64


class PyTdConnCore:
    """What the compiled `pollnet._pnfast.TdConnCore` holds and does, in Python: the base of
    TcpdirectConnection where the extension is not used (pollnet._fast)."""

    __slots__ = ("_buf", "_connected", "_free_pending", "_in_zc", "_queued", "_received",
                 "_sent", "redeliver")

    _buf: RecvBuffer
    _connected: bool
    _free_pending: bool
    _in_zc: bool
    _queued: bool
    _received: bool
    _sent: bool
    redeliver: bool
    _send: Any
    zock: Any

    if TYPE_CHECKING:  # TcpdirectConnection's (the compiled base calls them too)
        def _read_slow(self, on_data: Callable[[ConnectionBase, memoryview], int]) -> bool: ...
        def _send_failed(self, rc: int) -> None: ...
        def _write_from(self, data: BytesLike, more: bool, rc: int) -> bool: ...

    def _attach(self, buf: RecvBuffer, *_addresses: int) -> None:
        self._buf = buf

    def read(self, on_data: Callable[[ConnectionBase, memoryview], int]) -> bool:
        """Hand the packets the reactor brought in to `on_data`, one call per packet.

        True when it stopped at MAX_PACKETS_PER_POLL with more perhaps waiting."""
        return self._read_slow(on_data)

    def write_some(self, data: BytesLike, more: bool = False) -> int:
        if type(data) is not bytes and type(data) is not bytearray:
            data = byte_view(data, "write_some")
        if not self._connected:
            return -1
        size = len(data)
        if not size or self._queued:  # queued bytes go first
            return 0
        ptr = data if type(data) is bytes else _from_buffer(data)
        rc: int = self._send(self.zock, ptr, size, _MORE if more else 0)
        if rc >= 0:
            self._sent = True
            return rc
        if rc in _RETRY:
            return 0
        self._send_failed(rc)
        return -1

    def write(self, data: BytesLike, more: bool = False) -> bool:
        """Send everything, running the reactor between tries: on TCPDirect the send
        queue only drains while the stack is polled."""
        if type(data) is not bytes and type(data) is not bytearray:
            data = byte_view(data, "write")
        if not self._connected:
            return False
        size = len(data)
        if not size:
            return True
        if self._queued:
            return self._write_from(data, more, 0)
        ptr = data if type(data) is bytes else _from_buffer(data)
        rc: int = self._send(self.zock, ptr, size, _MORE if more else 0)
        if rc == size:
            self._sent = True
            return True
        return self._write_from(data, more, rc)


if TYPE_CHECKING:
    _TdBase = PyTdConnCore
else:
    _TdBase = PyTdConnCore if FAST is None else FAST.TdConnCore


class TcpdirectConnection(_TdBase, ConnectionBase):
    __slots__ = (
        "_closed_queue",
        "_error",
        "_iov",
        "_last_recv_ns",
        "_last_send_ns",
        "_lib",
        "_linger",
        "_msg",
        "_peer",
        "_queue",
        "_queue_more",
        "_send",
        "_stack",
        "_waitable",
        "_zc_done",
        "_zc_recv",
        "key",
        "user_data",
        "zock",
    )

    def __init__(
        self,
        stack: Stack,
        zock: Any,
        peer: Peername | None,
        buf: RecvBuffer,
        closed_queue: list[ConnectionBase],
        now_ns: int,
    ) -> None:
        super().__init__(closed_queue, peer, now_ns)
        # The handler raised or broke the contract: the bytes it was shown are in the
        # buffer and are presented again at the next read, new bytes or not.
        self.redeliver = False
        lib = stack.lib
        self._lib = lib
        self._stack = stack
        self.zock = zock
        self._attach(buf, zf.address(zock), zf.address(lib.zft_zc_recv),
                     zf.address(lib.zft_zc_recv_done), zf.address(lib.zft_send_single))
        # One zft_msg with a single iovec, made once: the receive path allocates no struct.
        self._msg = _ffi.new("struct zft_msg *", {"iov": 1})
        self._iov = self._msg.iov[0]  # a view into _msg, read after each zft_zc_recv
        self._send = lib.zft_send_single
        self._zc_recv = lib.zft_zc_recv
        self._zc_done = lib.zft_zc_recv_done
        self._in_zc = False  # a packet is lent to us (between zc_recv and zc_recv_done)
        self._free_pending = False  # closed while lent: free after zc_recv_done
        # Bytes write() could not hand to the library yet, sent by the stack's next polls.
        self._queue = bytearray()
        self._queued = False
        self._queue_more = False  # the last write's `more`, for the queue's last bytes
        self._linger = False  # closed with bytes queued: free the zocket once they are sent
        self._waitable: Any = None  # set by a server that watches it with its muxer
        self.key = 0  # the server's muxer user data for it

    # ---------------------------------------------------------------- lifetime

    def close(self, reason: str = "closed by application") -> None:
        self._linger = True  # as the kernel: what write() queued goes out before the FIN
        self._shutdown(reason)

    def _release(self) -> None:
        if self._queued and self._linger:
            self._stop_watching()
            return  # the stack's flush frees the zocket when the queue is sent
        if self._in_zc:
            self._free_pending = True  # zft_free must wait for zft_zc_recv_done
            return
        self._free_zocket()

    def _stop_watching(self) -> None:
        if self._waitable is not None:
            self._lib.zf_muxer_del(self._waitable)
            self._waitable = None

    def _free_zocket(self) -> None:
        self._stop_watching()
        if self._queued:  # closed on an error: what was queued is lost with the zocket
            self._queued = False
            self._queue.clear()
            self._stack.queued.remove(self)
        self._lib.zft_free(self.zock)

    def _send_failed(self, rc: int) -> None:
        """zft_send_single returned `rc` < 0: close with the zocket's own error if set."""
        self._shutdown("send error", self._lib.zft_error(self.zock) or -rc)

    # ---------------------------------------------------------------- receive

    def _read_slow(self, on_data: Callable[[ConnectionBase, memoryview], int]) -> bool:
        """read(), all of it in Python (the compiled read comes here when bytes are kept
        from last time or presented again)."""
        if self.redeliver:
            self.redeliver = False
            buf = self._buf
            self._present(buf.view[buf.head:buf.tail], on_data)
            if not self._connected:
                return False
        zock = self.zock
        msg = self._msg
        iov = self._iov
        zc_recv = self._zc_recv
        for _ in range(MAX_PACKETS_PER_POLL):
            msg.iovcnt = 1
            zc_recv(zock, msg, 0)
            if msg.iovcnt == 0:
                return False
            n = iov.iov_len
            if n == 0:  # end of stream: zft_zc_recv_done says whether orderly
                self._stream_ended(self._zc_done(zock, msg))
                return False
            self._received = True
            self._in_zc = True
            try:
                self._deliver(memoryview(_buffer(iov.iov_base, n)), n, on_data)
            finally:
                self._in_zc = False
                self._zc_done(zock, msg)
                if self._free_pending:
                    self._free_pending = False
                    self._free_zocket()
            if not self._connected:
                return False
        return True

    def _stream_ended(self, rc: int) -> None:
        """zft_zc_recv_done's verdict on an end of stream: 0 is an orderly close."""
        if rc == 0:
            self._linger = True  # the peer still reads until it closes: send the queue
            self._shutdown("remote close")
            return
        code = self._lib.zft_error(self.zock) or -rc
        if code == errno.EPIPE:  # zft_error: the peer closed, then refused our bytes
            self._shutdown("connection reset after the peer's close", code)
        else:
            self._shutdown("recv error", code)

    def _keep_packet(self, packet: memoryview, n: int, result: object) -> None:
        """The compiled read's handler left bytes of the lent packet unconsumed, or raised
        (result None): copy what stays into the buffer before the packet goes back."""
        buf = self._buf
        if result is not None:
            try:
                remaining = (result if type(result) is int and 0 <= result <= n
                             else checked_remaining(result, n))
            except BaseException:
                buf.view[:n] = packet
                buf.tail = n
                self.redeliver = True
                raise
            if not self._connected or not remaining:
                return
            if remaining >= buf.size:
                self._shutdown(buffer_full_reason(buf.size))
                return
            buf.view[:remaining] = packet[n - remaining :]
            buf.tail = remaining
            return
        buf.view[:n] = packet
        buf.tail = n

    def _deliver(
        self, packet: memoryview, n: int, on_data: Callable[[ConnectionBase, memoryview], int]
    ) -> None:
        buf = self._buf
        off = 0
        if buf.tail == 0:
            # Nothing kept from before: the handler reads the library's packet in place,
            # at most recv_buf_size bytes of it at a time, as on every backend.
            off = n if n <= buf.size else buf.size
            chunk = packet if off == n else packet[:off]
            try:
                remaining = on_data(self, chunk)
                if type(remaining) is not int or not 0 <= remaining <= off:
                    remaining = checked_remaining(remaining, off)
            except BaseException:
                # The packet goes back to the library: keep what the handler saw.
                buf.view[:off] = chunk
                buf.tail = off
                self.redeliver = True
                raise
            if not self._connected:
                return
            if remaining:
                if remaining >= buf.size:
                    self._shutdown(buffer_full_reason(buf.size))
                    return
                buf.view[:remaining] = chunk[off - remaining :]
                buf.tail = remaining
        # Bytes are kept: append the rest behind them (in pieces if the buffer is short).
        while off < n:
            room = buf.room()
            k = min(len(room), n - off)
            room[:k] = packet[off : off + k]
            off += k
            if not self._present(buf.fill(k), on_data):
                return

    def _present(
        self, data: memoryview, on_data: Callable[[ConnectionBase, memoryview], int]
    ) -> bool:
        """Kept + new bytes, already in the buffer, to the handler; False if closed."""
        try:
            remaining = on_data(self, data)
            if type(remaining) is not int or not 0 <= remaining <= len(data):
                remaining = checked_remaining(remaining, len(data))
        except BaseException:
            self.redeliver = True  # the buffer still holds all of `data`
            raise
        if not self._connected:
            return False
        if not self._buf.keep(remaining):
            self._shutdown(buffer_full_reason(self._buf.size))
            return False
        return True

    # ---------------------------------------------------------------- send

    def _write_from(self, data: BytesLike, more: bool, rc: int) -> bool:
        """write() after a first zft_send_single that took `rc` (< len) of `data`, or
        0 when bytes are queued already: queue the rest, in order, for the stack's next
        polls. It never blocks: the reactor only moves when polled, and a peer polled by
        this same thread could never drain a busy-wait (as on efvi)."""
        if rc < 0 and rc not in _RETRY:
            self._send_failed(rc)
            return False
        if rc > 0:
            self._sent = True
        view = memoryview(data).cast("B")
        self._queue += view[rc:] if rc > 0 else view
        self._queue_more = more
        if not self._queued:
            self._queued = True
            self._stack.queued.append(self)
        return True

    def _flush(self) -> bool:
        """Hand queued bytes to the library; True when none are left (or it is closed)."""
        queue = self._queue
        rc: int = self._send(self.zock, _from_buffer(queue), len(queue),
                             _MORE if self._queue_more else 0)
        if rc in _RETRY:
            return False
        if rc >= 0:
            self._sent = True
            del queue[:rc]
            if queue:
                return False
        self._queued = False
        queue.clear()
        if self._connected:
            if rc < 0:
                self._send_failed(rc)
        else:  # closed with bytes queued: its zocket waited for them
            self._free_zocket()
        return True

    def _abandon_queue(self) -> None:
        """The stack is being freed: drop what is still queued, free a closed zocket."""
        self._queued = False
        self._queue.clear()
        if not self._connected:
            self._free_zocket()

    def write_nonblock(self, data: BytesLike, more: bool = False) -> bool:
        if type(data) is not bytes and type(data) is not bytearray:
            data = byte_view(data, "write_nonblock")
        if not self._connected:
            return False
        size = len(data)
        n = self.write_some(data, more)
        if n == size:
            return True
        if n >= 0:
            self._shutdown(f"send buffer full: write_nonblock sent {n} of {size} bytes")
        return False
