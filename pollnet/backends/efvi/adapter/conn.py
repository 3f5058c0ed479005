"""A pollnet-level connection over one efvitcp-level `Connection` (pollnet interface).

Receive is zero-copy: the core's memoryview goes straight to `on_tcp_data` and the
handler's `remaining` goes back to the core, which keeps exactly those bytes. Only a
connection that waited in a server's backlog holds bytes in Python (`_held`) until the
handler has seen them; after that it is zero-copy again.

Close follows the kernel (and the socket backend), not pollnet's efvi wrapper: a FIN when
every received byte was presented to the handler, a RST when bytes arrived that it never
saw (RFC 2525 2.17) or when the connection dies on an error.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from pollnet.api import BytesLike, Peername
from pollnet.backends.efvi.core.fast import FAST
from pollnet.backends.efvi.errors import EfviError
from pollnet.connection import ConnectionBase, byte_view
from pollnet.handler import checked_remaining
from pollnet.recvbuf import RecvBuffer, buffer_full_reason

if TYPE_CHECKING:
    from pollnet.backends.efvi.efvitcp.connection import Connection

SEND_TIMER = 0  # user timer ids the adapter reserves (as pollnet's efvi wrapper does)
RECV_TIMER = 1
MAX_TIMER_MS = 65000  # the core's longest user timer


def timer_plan(seconds: float) -> tuple[int, int]:
    """(chunk ms, chunks): a timeout longer than one user timer is several in a row."""
    ms = max(1, round(seconds * 1000)) if seconds > 0 else 0
    if not ms:
        return 0, 0
    chunks = -(-ms // MAX_TIMER_MS)
    return -(-ms // chunks), chunks


# What a full receive buffer asks to raise: the core's buffer is the pollnet one.
_RECV_SIZES = "recv_buf_size / efvi.conn_recv_buf_size"


class Plan:
    """An owner's timer plans and receive limit, shared by its connections (read on the
    data path without going through the owner's weak proxy)."""

    __slots__ = ("recv_chunks", "recv_ms", "recv_size", "send_chunks", "send_ms")

    def __init__(self, send_timeout_sec: float, recv_timeout_sec: float, recv_size: int
                 ) -> None:
        self.send_ms, self.send_chunks = timer_plan(send_timeout_sec)
        self.recv_ms, self.recv_chunks = timer_plan(recv_timeout_sec)
        self.recv_size = recv_size


class Owner:
    """What a connection needs from its client or server: the send/recv timer plans,
    whether a dispatch is running (then the stack must not be polled), the pump that
    polls the stack without taking events, and the list of connections whose writes
    are sent by later polls."""

    plan: Plan
    send_ms: int
    send_chunks: int
    recv_ms: int
    recv_chunks: int
    recv_size: int
    flush: list[EfviPollConnection]

    @property
    def dispatching(self) -> bool:
        raise NotImplementedError

    def pump(self) -> None:
        raise NotImplementedError


class PyPollConnCore:
    """What the compiled `pollnet._pnfast.PollConnCore` holds and does, in Python: the base
    of EfviPollConnection where the extension is not used (see `_fast`). The per-message
    state, and the write methods (their rarer cases call back the subclass's helpers)."""

    __slots__ = ("_announced", "_connected", "_core", "_held", "_kept", "_outq", "_recv_left",
                 "_rx_total", "_send_left")

    _core: Connection
    _held: RecvBuffer | None
    _outq: bytearray | None
    _rx_total: int
    _kept: int
    _send_left: int
    _recv_left: int
    _connected: bool
    _announced: bool

    _send: Callable[[BytesLike, bool], int]

    if TYPE_CHECKING:  # EfviPollConnection's (the compiled base calls them too)
        def _sent_some(self) -> None: ...
        def _send_error(self, exc: EfviError) -> None: ...
        def _queue(self, data: BytesLike, n: int) -> bool: ...
        def _shutdown(self, reason: str, errno_value: int = 0) -> None: ...

    def _use_plan(self, plan: Plan) -> None:
        """The compiled base copies the plan's numbers; this one reads `_plan`."""

    def _try_send(self, data: BytesLike, more: bool) -> int:
        """pn_send: bytes accepted, or -1 (the connection was closed with the error)."""
        try:
            n = self._send(data, more)
        except EfviError as exc:
            self._send_error(exc)
            return -1
        if n:
            self._sent_some()
        return n

    def write_some(self, data: BytesLike, more: bool = False) -> int:
        if type(data) is not bytes and type(data) is not bytearray:
            data = byte_view(data, "write_some")
        if not self._connected:
            return -1
        if self._outq:
            return 0  # an earlier write's tail goes first
        return self._try_send(data, more)

    def write_nonblock(self, data: BytesLike, more: bool = False) -> bool:
        if type(data) is not bytes and type(data) is not bytearray:
            data = byte_view(data, "write_nonblock")
        if not self._connected:
            return False
        size = len(data)  # bytes: byte_view made it so
        n = 0 if self._outq else self._try_send(data, more)
        if n == size:
            return True
        if n >= 0 and self._connected:
            self._shutdown(f"send buffer full: write_nonblock sent {n} of {size} bytes")
        return False

    def write(self, data: BytesLike, more: bool = False) -> bool:
        """All of `data`, in order, never blocking: what the send buffers cannot take now
        is copied to this connection's queue and sent by the following polls as
        acknowledgements free the buffers (the stack only progresses when polled, and a
        peer polled by the same thread could never drain a busy-wait). Until the queue
        is empty `write_some` takes nothing and `write_nonblock` fails."""
        if type(data) is not bytes and type(data) is not bytearray:
            data = byte_view(data, "write")
        if not self._connected:
            return False
        n = 0
        if self._outq is None:
            n = self._try_send(data, more)
            if n < 0:
                return False
        if n == len(data):  # bytes: byte_view made it so
            return True
        return self._queue(data, n)


if TYPE_CHECKING:
    _PollConnBase = PyPollConnCore
else:
    _PollConnBase = PyPollConnCore if FAST is None else FAST.PollConnCore


class EfviPollConnection(_PollConnBase, ConnectionBase):
    __slots__ = (
        "_base",
        "_closed_queue",
        "_core_dead",
        "_error",
        "_fin_after",
        "_fin_pending",
        "_fin_seen",
        "_last_recv_ns",
        "_last_send_ns",
        "_owner",
        "_peer",
        "_plan",
        "_received",
        "_resume_off",
        "_send",
        "_sent",
        "_set_timer",
        "user_data",
    )

    def __init__(
        self,
        core: Connection,
        owner: Owner,
        peer: Peername | None,
        closed_queue: list[ConnectionBase],
        now_ns: int,
    ) -> None:
        super().__init__(closed_queue, peer, now_ns)
        self._core = core
        # A proxy: the connection is the stack's slot's user_data, so a strong reference
        # to the owner (which holds the stack) would make a cycle the GC must break.
        self._owner: Owner = cast(Owner, weakref.proxy(owner))
        self._plan = owner.plan
        self._use_plan(owner.plan)
        self._send = core.send  # bound once: the data path is one call into the core
        self._set_timer = core.set_user_timer
        self._core_dead = False  # the core freed the slot (reset/closed/timeout)
        self._announced = True  # False while waiting in a server's backlog
        self._fin_pending = False  # the peer finished while we were in the backlog
        self._fin_seen = False  # the peer's FIN arrived (it takes one sequence number)
        self._fin_after = False  # closed with bytes queued: FIN once they are sent
        self._held: RecvBuffer | None = None  # bytes held in Python (backlog only)
        self._outq: bytearray | None = None  # a write's tail, sent by later polls
        self._kept = 0  # bytes the handler left unconsumed last time
        self._resume_off = 0  # how far a raising handler got into the current event
        self._rx_total = 0  # bytes ever presented (for the FIN-or-RST choice)
        # The sequence number of the first data byte: the peer's ISN + 1. Not rcv_nxt
        # now -- bytes that came with the handshake's ACK were taken in already.
        self._base = 0
        self._send_left = owner.send_chunks
        self._recv_left = owner.recv_chunks
        try:
            self._base = (core.info().irs + 1) & 0xFFFFFFFF
        except EfviError:
            self._base = 0

    # ---------------------------------------------------------------- timers

    def arm_timers(self) -> None:
        owner = self._plan
        if owner.send_ms:
            self._set_timer(SEND_TIMER, owner.send_ms)
        if owner.recv_ms:
            self._set_timer(RECV_TIMER, owner.recv_ms)

    def timer_fired(self, timer_id: int, on_send: Callable[[Any], object],
                    on_recv: Callable[[Any], object]) -> None:
        owner = self._plan
        if timer_id == SEND_TIMER and owner.send_ms:
            self._send_left -= 1
            if self._send_left <= 0:
                self._send_left = owner.send_chunks
                on_send(self)
            if self._connected:
                self._set_timer(SEND_TIMER, owner.send_ms)
        elif timer_id == RECV_TIMER and owner.recv_ms:
            self._recv_left -= 1
            if self._recv_left <= 0:
                self._recv_left = owner.recv_chunks
                on_recv(self)
            if self._connected:
                self._set_timer(RECV_TIMER, owner.recv_ms)

    # ---------------------------------------------------------------- receive

    def deliver(self, on_data: Callable[[Any, memoryview], int], data: memoryview) -> int:
        """The core presents `data` (kept bytes first): hand it to the handler and
        return what the core must keep. If the handler raises or returns no valid count,
        nothing is counted and the core presents the same event again next poll."""
        size = len(data)
        owner = self._plan
        if owner.recv_ms:
            self._recv_left = owner.recv_chunks
            self._set_timer(RECV_TIMER, owner.recv_ms)
        if self._held is not None:
            return self._deliver_held(on_data, data)
        if size > owner.recv_size:
            return self._deliver_chunks(on_data, data)
        rem = on_data(self, data)
        if type(rem) is not int or not 0 <= rem <= size:
            rem = checked_remaining(rem, size)
        self._rx_total += size - self._kept
        if not self._connected:
            self._kept = 0
            return 0
        if rem == size and size >= owner.recv_size:
            self._kept = 0
            self._shutdown(buffer_full_reason(owner.recv_size, _RECV_SIZES))
            return 0
        self._kept = rem
        return rem

    def _deliver_chunks(self, on_data: Callable[[Any, memoryview], int], data: memoryview
                        ) -> int:
        """The core's buffer is larger than the pollnet receive buffer (the core's minimum
        is 512 bytes): present at most `recv_size` bytes a call, each time the kept bytes
        first, as the socket backend does. `_resume_off` remembers how far the handler
        got when it raised, so the event presented again does not repeat those bytes."""
        limit = self._plan.recv_size
        size = len(data)
        off = self._resume_off
        while True:
            end = min(size, off + limit)
            self._resume_off = off
            got = on_data(self, data[off:end])
            if type(got) is not int or not 0 <= got <= end - off:
                got = checked_remaining(got, end - off)
            if not self._connected:
                self._resume_off = self._kept = 0
                return 0
            if got >= limit:
                self._resume_off = self._kept = 0
                self._shutdown(buffer_full_reason(limit, _RECV_SIZES))
                return 0
            off = end - got
            if end >= size:
                break
        self._rx_total += size - self._kept
        self._resume_off = 0
        self._kept = size - off
        return size - off

    def hold(self, data: memoryview) -> int:
        """Backlog: copy what fits into the Python buffer; the core keeps the rest (its
        window closes like a kernel socket's receive buffer)."""
        buf = self._held
        if buf is None:
            buf = self._held = RecvBuffer(self._plan.recv_size)
        size = len(data)
        k = min(buf.size - buf.tail, size)
        buf.view[buf.tail:buf.tail + k] = data[:k]
        buf.tail += k
        self._rx_total += k
        self._kept = 0
        return size - k

    def present_held(self, on_data: Callable[[Any, memoryview], int]) -> None:
        """After the backlog: show the held bytes (outside any dispatch)."""
        buf = self._held
        if buf is None or not buf.tail:
            self._held = None
            return
        rem = on_data(self, buf.view[buf.head:buf.tail])
        if not self._connected:
            return
        if not buf.keep(rem):
            self._shutdown(buffer_full_reason(buf.size, _RECV_SIZES))
        elif not buf.pending:
            self._held = None

    def _deliver_held(self, on_data: Callable[[Any, memoryview], int], data: memoryview) -> int:
        """Bytes are held in Python: append the core's behind them until the handler
        has taken what it can (then back to zero-copy). After a raise the event comes
        again: `_resume_off` says how much of it the held buffer already has."""
        buf = self._held
        assert buf is not None
        size = len(data)
        off = self._resume_off or self._kept
        while True:
            room = buf.room()
            k = min(len(room), size - off)
            room[:k] = data[off:off + k]
            off += k
            self._resume_off = off
            view = buf.fill(k)
            rem = on_data(self, view)
            if type(rem) is not int or not 0 <= rem <= len(view):
                rem = checked_remaining(rem, len(view))
            if not self._connected:
                self._resume_off = self._kept = 0
                return 0
            if not buf.keep(rem):
                self._resume_off = self._kept = 0
                self._shutdown(buffer_full_reason(buf.size, _RECV_SIZES))
                return 0
            if off >= size:
                break
        self._rx_total += size - self._kept
        if not buf.pending:
            self._held = None
        self._resume_off = self._kept = 0
        return 0

    # ---------------------------------------------------------------- send

    def _sent_some(self) -> None:
        owner = self._plan
        if owner.send_ms:
            self._send_left = owner.send_chunks
            self._set_timer(SEND_TIMER, owner.send_ms)

    def _send_error(self, exc: EfviError) -> None:
        # The exception's traceback holds the core's `from_buffer` of the caller's data:
        # drop it now, or the caller's memoryview stays exported until a GC run.
        exc.__traceback__ = None
        self._core_dead = True
        self._shutdown(f"send error: {exc}")

    def _send_failed(self, rc: int) -> None:
        """pn_send failed with `rc` (0: the core's connection is closed already)."""
        try:
            if rc == 0:
                raise self._core._dead("send")
            self._core._check(rc, "send")
        except EfviError as exc:
            self._send_error(exc)

    def _queue(self, data: BytesLike, n: int) -> bool:
        """A write's bytes from `n` on did not fit: copy them to the queue that later
        polls send (behind what is queued already)."""
        if self._outq is not None:
            self._outq += memoryview(data)[n:]
            return True
        self._outq = bytearray(memoryview(data)[n:])
        try:
            self._owner.flush.append(self)
        except ReferenceError:  # its client/server is gone: nothing will poll the stack
            self._shutdown("send error: the client or server of this connection is gone")
            return False
        return True

    def _recv_full(self) -> None:
        self._shutdown(buffer_full_reason(self._plan.recv_size, _RECV_SIZES))

    def send_queued(self) -> bool:
        """Send what the buffers take of the queue; True when it is empty (or dead)."""
        q = self._outq
        if q is None or not (self._connected or self._fin_after):
            self._outq = None
            return True
        try:
            n = self._send(q, False)
        except EfviError as exc:
            self._send_error(exc)
            return True
        if n:
            self._sent_some()
            if n == len(q):
                self._outq = None
                if self._fin_after:
                    self._fin_after = False
                    try:
                        self._core.send_fin()
                    except EfviError as exc:
                        exc.__traceback__ = None
                        self._core.close()
                return True
            del q[:n]
        return False

    # ---------------------------------------------------------------- close

    def _release(self) -> None:
        core = self._core
        if self._core_dead or core.is_closed:
            self._outq = None
            return
        try:
            try:
                idle = not self._owner.dispatching
            except ReferenceError:  # the owner is gone: no pump
                idle = False
            if idle:
                self._owner.pump()  # frames already on the link count as received
            if core.is_established and not core.is_closed:
                fin = 1 if self._fin_seen else 0
                unread = (core.info().rcv_nxt - self._base - self._rx_total - fin) & 0xFFFFFFFF
                if unread == 0:
                    if self._outq:
                        self._fin_after = True  # the queued bytes first, as the kernel does
                    else:
                        core.send_fin()
                    return
        except EfviError as exc:
            exc.__traceback__ = None
        self._outq = None
        core.close()  # RST
