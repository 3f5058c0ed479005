"""What TcpClient and TcpServer share: one `pn_stack` on one link, and `poll()`.

`poll(handler)` makes ONE call into C (`pn_poll`, which receives, runs timers, flushes and
fills a preallocated event array) and then dispatches the batch to the handler's methods.
The dispatch loop allocates nothing per event beyond what Python must (the memoryview of
on_data/on_fin): the event array, the connection objects and the handler's bound methods
are all made in advance. A batch of exactly one DATA event (every message of a
ping-pong) is dispatched inline by poll() itself, with the same effects as the loop.

Where the compiled per-message path runs (pollnet._pnfast, see pollnet/_fast.py), poll()
is its Poller's: the same steps in C, which hands ESTABLISHED, FIN and the endings to
`_event` here; the Python poll() and `_dispatch` are then the fallback.

About six hundred lines: the Python path's dispatch reads the endpoint's own state in its
per-event loop (an attribute of another object costs a lookup per event), so it stays here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Self

from pollnet.backends.efvi.core import binding as _core
from pollnet.backends.efvi.core.fast import FAST, address
from pollnet.backends.efvi.core.stack import StackHandle
from pollnet.backends.efvi.efvitcp.connection import Connection
from pollnet.backends.efvi.efvitcp.handler import Bound, Method, bind
from pollnet.backends.efvi.errors import EfviError
from pollnet.backends.efvi.link.open import open_link
from pollnet.backends.efvi.link.sim import SimWire
from pollnet.config import EfviOptions
from pollnet.handler import checked_remaining

EVENT_BATCH = 256  # events per pn_poll; more stay queued in C for the next poll

_CC = {"none": "PN_CC_NONE", "newreno": "PN_CC_NEWRENO", "cubic": "PN_CC_CUBIC"}

# What poll()'s one-DATA-event path reads: the DATA code, the first event's conn_id, len
# and remaining word offsets, its data pointer's index, ffi.buffer. The same for every
# endpoint (one core per process), set by the first. A module global, not an attribute:
# CPython 3.11 keeps an instance's attributes in the fast shared-key layout only while
# there are at most 29 of them (measured: at 30 every self.x in poll() and _dispatch()
# deoptimises to a dict lookup, +1.3k instructions per message in the dispatch loop);
# TcpClient and TcpServer have 29 (tests/efvi/test_wire.py keeps them there).
_ONE: tuple[Any, ...] = ()
MAX_FAST_ATTRS = 29
# Connection.end_reason: the core's pn_reason_str of pn_event.reason, set when the ending
# event is dispatched (before its handler runs). The core gives a reason for TIMEOUT,
# RESET and REFUSED; CLOSED and ARP_FAILED carry none and get the event's own text.
_REASONS: dict[int, str] = (
    {v: _core.c_string(_core.lib.pn_reason_str(v))
     for v in _core.constants("PN_REASON_").values() if v}
    if _core.available() else {})
_EV = _core.constants("PN_EV_")
# The event codes in Bound's order of their methods (ARP_FAILED goes to on_timeout).
_EV_CODES: tuple[int, ...] = tuple(_EV.get(f"PN_EV_{n}", -1) for n in (
    "DATA", "FIN", "MORE_SENDABLE", "CONNECTION_ESTABLISHED", "CONNECTION_CLOSED",
    "CONNECTION_RESET", "CONNECTION_TIMEOUT", "CONNECTION_REFUSED", "USER_TIMEOUT",
    "ARP_FAILED"))
_NO_REASON: dict[int, str] = {_EV[f"PN_EV_{k}"]: v for k, v in (
    ("CONNECTION_CLOSED", "closed: both FINs sent and acknowledged"),
    ("ARP_FAILED", "ARP for the next hop unanswered"),
    ("CONNECTION_TIMEOUT", "timed out"),
    ("CONNECTION_RESET", "reset"),
    ("CONNECTION_REFUSED", "refused"),
) if f"PN_EV_{k}" in _EV}


def end_reason_text(event: int, reason: int) -> str:
    """Connection.end_reason for an ending event (`PN_EV_*`) and its `PN_REASON_*`."""
    text = _REASONS.get(reason)
    if text is None:
        if reason:  # a core newer than this module
            text = _core.c_string(_core.lib.pn_reason_str(reason))
        else:
            text = _NO_REASON.get(event, "ended")
    return text


_SYN_COOKIES = {"never": "PN_SYN_COOKIES_NEVER", "when_full": "PN_SYN_COOKIES_WHEN_FULL",
                "always": "PN_SYN_COOKIES_ALWAYS"}
_HOSTILE_KNOBS = ("max_syn_backlog", "max_ooo_segs", "max_ooo_bytes", "zero_window_timeout_ms",
                  "max_conns_per_source", "challenge_ack_limit", "oow_rate_limit_ms",
                  "fin_timeout_ms", "keepalive_idle_ms", "keepalive_intvl_ms", "keepalive_cnt")


def make_config(options: EfviOptions, *, max_conn_cnt: int, local_ip: int, netmask: int,
                isn_seed: int | None = None, link_mtu: int = 0) -> Any:
    """A `pn_config` from the options: every efvitcp knob under efvitcp's name; the MTU
    never above the link's (`link_mtu`, 0 = not known: 1500 for mtu = "link")."""
    ffi, lib = _core.require()
    cfg = ffi.new("pn_config *")
    lib.pn_config_default(cfg)
    mtu = min(link_mtu or 1500, 9000) if options.mtu == "link" else options.mtu
    cfg.mtu = min(mtu, link_mtu) if link_mtu else mtu
    cfg.conn_send_buf_cnt = options.conn_send_buf_cnt
    cfg.send_buf_1k = options.send_buf_1k
    if options.send_buf_size == "mtu":  # a segment of the MTU's MSS and 64 bytes to spare
        cfg.send_buf_size = max(1024, (int(cfg.mtu) - 40 + 64 + 63) // 64 * 64)
    else:
        cfg.send_buf_size = options.send_buf_size
    cfg.conn_recv_buf_size = options.conn_recv_buf_size
    cfg.max_conn_cnt = max_conn_cnt
    cfg.max_time_wait_conn_cnt = options.max_time_wait_conn_cnt
    cfg.recv_buf_cnt = options.recv_buf_cnt
    cfg.syn_retries = options.syn_retries
    cfg.tcp_retries = options.tcp_retries
    cfg.delayed_ack_ms = options.delayed_ack_ms
    cfg.ack_every = options.ack_every
    cfg.min_rto_ms = options.min_rto_ms
    cfg.max_rto_ms = options.max_rto_ms
    cfg.window_scale = options.window_scale
    cfg.timestamps = options.timestamps
    cfg.sack = options.sack
    cfg.congestion_control = getattr(lib, _CC[options.congestion_control])
    cfg.user_timer_cnt = options.user_timer_cnt
    cfg.verify_checksums = options.verify_checksums
    for knob in _HOSTILE_KNOBS:  # the hostile-peer knobs (pollnet.config, docs/core.md)
        setattr(cfg, knob, getattr(options, knob))
    cfg.syn_cookies = getattr(lib, _SYN_COOKIES[options.syn_cookies])
    cfg.local_ip = local_ip
    cfg.netmask = netmask
    if isn_seed is not None:  # deterministic sequence numbers on the sim wire
        cfg.isn_secret[0] = isn_seed & 0xFFFFFFFFFFFFFFFF
        cfg.isn_secret[1] = (local_ip * 0x9E3779B97F4A7C15 + 1) & 0xFFFFFFFFFFFFFFFF
    return cfg


def footprint(options: EfviOptions | None = None, *, max_conn_cnt: int | None = None) -> int:
    """Bytes a stack with these options allocates (its arena), without creating it."""
    options = options or EfviOptions()
    _, lib = _core.require()
    cfg = make_config(options, max_conn_cnt=max_conn_cnt or options.max_conn_cnt,
                      local_ip=0x0A000001, netmask=0xFFFFFF00)
    return int(lib.pn_stack_footprint(cfg))


class Endpoint:
    """One stack on one link. Subclassed by TcpClient and TcpServer."""

    def __init__(
        self,
        options: EfviOptions | None,
        *,
        max_conn_cnt: int,
        wire: SimWire | None = None,
        local_ip: str | None = None,
    ) -> None:
        ffi, lib = _core.require()
        options = options or EfviOptions()
        self.options = options
        self.user_timer_cnt = options.user_timer_cnt
        self._lib: Any = lib
        if wire is None and options.link == "sim":
            wire = SimWire(options.sim)
        self.wire = wire
        link = open_link(options, wire=wire, local_ip=local_ip)
        self._link = link
        self.local_ip = _core.int_to_ip(link.local_ip)
        isn_seed = wire.seed if wire is not None else None
        cfg = make_config(options, max_conn_cnt=max_conn_cnt, local_ip=link.local_ip,
                          netmask=link.netmask, isn_seed=isn_seed, link_mtu=link.mtu)
        cfg.gateway_ip = link.gateway_ip
        out = ffi.new("pn_stack **")
        err = ffi.new("char[256]")
        rc = lib.pn_stack_create(out, cfg, link.ptr, err, 256)
        if rc < 0:
            link.close()
            msg = _core.c_string(err) or _core.c_string(lib.pn_strerror(rc))
            hint = ""
            if rc == lib.PN_ENOMEM:
                hint = (f"the arena needs {int(lib.pn_stack_footprint(cfg))} bytes: lower "
                        "max_conn_cnt, conn_send_buf_cnt, conn_recv_buf_size or recv_buf_cnt")
            raise _core.core_error(rc, f"creating the efvi stack on {link.describe()}: {msg}",
                                   hint)
        self._h = StackHandle(out[0], link, options.user_timer_cnt)
        self._stack: Any = out[0]
        if wire is not None:
            wire._join(self, link)

        self.max_conn_cnt = max_conn_cnt
        self._conns: list[Connection] = [Connection(self._h, i) for i in range(max_conn_cnt)]
        self._stats = ffi.new("pn_stats *")

        # The event batch lives in a bytearray that C fills through ffi.from_buffer, read
        # through uint32/uint16 memoryviews of that bytearray: `words[k]` makes an int where
        # `events[i].type` would make a struct cdata first. (Views of the bytearray, not of
        # an ffi.buffer: long-lived memoryviews over a cffi buffer caught in a reference
        # cycle have crashed CPython 3.11's GC.)
        size = ffi.sizeof("pn_event")
        assert size % 8 == 0
        self._ev_bytes = bytearray(size * EVENT_BATCH)
        self._events = ffi.from_buffer("pn_event[]", self._ev_bytes, require_writable=True)
        assert int(ffi.cast("uintptr_t", self._events)) % ffi.alignof("pn_event") == 0
        if FAST is None:
            self._python_layout(size)

        if wire is not None:
            # Set the new stack's clock to the wire's before anything is sent (a connect
            # before the first poll would stamp its frames with time 0). max = 0: any event
            # stays queued for the first real poll.
            lib.pn_poll(self._stack, wire.now_ns, self._events, 0)

        self._handler: object = None
        self._bound: Bound | None = None
        self._accept_target: _core.AcceptTarget | None = None
        self._accept_handle: Any = None
        self._accept_errors: list[BaseException] = []
        self._resume = 0  # events of the last batch not yet dispatched (a handler raised)
        self._pending = 0
        self._fast: Any = None
        if FAST is not None:
            self._fast = FAST.Poller(self, address(self._stack), self._ev_bytes, self._conns,
                                     wire, self._accept_errors, EVENT_BATCH, _remaining,
                                     _kept_export)
            # poll() is the compiled Poller's own: no Python frame between the caller and C
            self.poll = self._fast.poll  # type: ignore[method-assign]

    def _python_layout(self, size: int) -> None:
        """What the Python path reads the event array with (the compiled one reads C)."""
        ffi = _core.ffi
        # The uint32 words, uint16 halves and data pointers of the array, as views of the
        # bytearray (see above).
        self._ev_words = memoryview(self._ev_bytes).cast("I")
        fields = ("conn_id", "len", "timer_id", "remote_ip", "reason")
        for field in ("type", *fields):
            assert ffi.offsetof("pn_event", field) % 4 == 0
        off = ffi.offsetof("pn_event", "data")
        psize = ffi.sizeof("void *")
        assert size % psize == 0 and off % psize == 0
        # words: stride, field offsets; halves: remote and local port; pointers: stride, data
        self._ev_off = (size // 4, *(ffi.offsetof("pn_event", f) // 4 for f in fields),
                        ffi.offsetof("pn_event", "remote_port") // 2,
                        ffi.offsetof("pn_event", "local_port") // 2, size // psize, off // psize)
        self._ev_halves = memoryview(self._ev_bytes).cast("H")
        self._ev_ptrs = ffi.cast("const uint8_t **", self._events)
        global _ONE
        if not _ONE:
            _ONE = (_EV_CODES[0], *self._ev_off[1:3], self._ev_off[-1], ffi.buffer)

    # ------------------------------------------------------------ resources

    def close(self) -> None:
        """Destroy the stack and its link (connections vanish without a RST)."""
        if self.wire is not None and self._h.alive:
            self.wire._leave(self)
        self._h.destroy()
        self._stack = None
        if self._fast is not None:
            self._fast.detach()
        for c in self._conns:
            if not c._closed:
                c.end_reason = "the stack was closed"
            c._closed = True
            c._established = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _s(self) -> Any:
        """The live stack pointer, or an error naming the closed endpoint."""
        if self._stack is None:
            raise EfviError(f"{type(self).__name__} {self.local_ip} is closed")
        return self._stack

    @property
    def closed(self) -> bool:
        return not self._h.alive

    @property
    def memory_bytes(self) -> int:
        """The stack's footprint: the one arena it allocated at creation (efvitcp's
        sizeof(TcpServer)); nothing is allocated after that."""
        return int(self._lib.pn_stack_memory(self._s()))

    def stats(self) -> dict[str, int]:
        """The core's counters (`pn_stats`, nstat names where the kernel has one)."""
        self._lib.pn_stack_stats(self._s(), self._stats)
        return _core.struct_dict("pn_stats", self._stats)

    def link_stats(self) -> dict[str, int]:
        """The link's counters: a real link's `pn_real_link_stats`, the sim wire's
        `stats()` (shared by every host on it)."""
        if self.wire is not None:
            return self.wire.stats()
        return self._link.stats()

    def next_timer_ns(self) -> int | None:
        """The earliest time a timer of this stack is due, None if none."""
        t = int(self._lib.pn_stack_next_timer(self._s()))
        return None if t >= 0xFFFFFFFFFFFFFFFF else t

    def add_neighbour(self, ip: str, mac: bytes) -> None:
        """A static ARP entry (otherwise the next hop is resolved with ARP)."""
        if len(mac) != 6:
            raise EfviError(f"add_neighbour({ip!r}, ...): a MAC address is 6 bytes")
        rc = self._lib.pn_stack_add_neighbour(self._s(), _core.ip_to_int(ip), mac)
        if rc < 0:
            raise _core.core_error(rc, f"add_neighbour({ip!r})")

    @property
    def mac(self) -> bytes:
        return self._link.mac

    # ------------------------------------------------------------ connections

    def _slot(self, conn_id: int) -> Connection:
        conns = self._conns
        while conn_id >= len(conns):  # never with a core that keeps ids < max_conn_cnt
            conns.append(Connection(self._h, len(conns)))
        return conns[conn_id]

    def connections(self) -> Iterator[Connection]:
        """The live connections (opening or established, not closed)."""
        return (c for c in self._conns if not c._closed)

    def foreach_conn(self, fn: Callable[[Connection], object]) -> None:
        """Call fn(conn) for every live connection."""
        for c in self._conns:
            if not c._closed:
                fn(c)

    @property
    def conn_count(self) -> int:
        return sum(1 for c in self._conns if not c._closed)

    # ------------------------------------------------------------ polling

    def _bind(self, handler: object) -> Bound:
        bound = bind(handler)
        self._handler = handler
        self._bound = bound
        decide = bound.allow_new_connection
        if decide is None:
            self._lib.pn_stack_set_accept(self._s(), _core.ffi.NULL, _core.ffi.NULL)
            self._accept_target = self._accept_handle = None
        else:
            self._accept_target = _core.AcceptTarget(decide, self._accept_errors)
            self._accept_handle = _core.ffi.new_handle(self._accept_target)
            self._lib.pn_stack_set_accept(self._s(), self._lib._pn_py_accept,
                                          self._accept_handle)
        return bound

    def poll(self, handler: object, now_ns: int | None = None) -> int:
        """Receive, run timers, transmit, and call the handler for every event.

        One call into C per poll. `now_ns` is the monotonic time in nanoseconds; None reads
        the clock (on the sim wire: the wire's virtual clock). Returns the number of events
        of this batch. If a handler method raises, the exception propagates and the
        batch's remaining events are dispatched at the start of the next poll.
        """
        bound = self._bound if handler is self._handler else self._bind(handler)
        assert bound is not None
        if self._resume < self._pending:
            self._dispatch(bound, self._resume, self._pending)
        if now_ns is None:
            wire = self.wire
            now_ns = wire.now_ns if wire is not None else 0
        stack = self._stack
        if stack is None:
            self._s()
        n: int = self._lib.pn_poll(stack, now_ns, self._events, EVENT_BATCH)
        if self._accept_errors:
            err = self._accept_errors.pop()
            self._accept_errors.clear()
            if n > 0:  # keep the batch for the next poll
                self._resume, self._pending = 0, n
            raise err
        if n == 1:
            words = self._ev_words
            ev_data, o_conn, o_len, p_data, buffer = _ONE
            if words[0] == ev_data:
                # One DATA event: _dispatch(bound, 0, 1) inline, step for step.
                self._pending = 1
                cid = words[o_conn]
                try:
                    conn = self._conns[cid]
                except IndexError:
                    conn = self._slot(cid)
                on_data = bound[0]
                if conn._closed or on_data is None:
                    self._resume = 1
                    return 1
                size = words[o_len]
                view = memoryview(buffer(self._ev_ptrs[p_data], size))
                # A handler that raises (or returns no valid count) leaves the event
                # pending: the same bytes are presented again at the next poll.
                self._resume = 0
                try:
                    rem = on_data(conn, view)
                except BaseException:
                    _discard(view)
                    del view  # keep it out of the traceback (see _discard)
                    raise
                try:
                    view.release()
                except BufferError:
                    raise _kept_export(conn, "on_data") from None
                if type(rem) is not int or not 0 <= rem <= size:
                    rem = _remaining(rem, size, conn, "on_data")
                self._resume = 1
                conn._kept = rem
                if rem and self._stack is not None:  # (the handler may have closed us)
                    self._lib.pn_keep(stack, cid, rem)
                return 1
        elif n < 0:
            self._poll_error(n)
        if n:
            self._dispatch(bound, 0, n)
        return n

    def _dispatch(self, bound: Bound, start: int, n: int) -> None:
        (on_data, on_fin, on_more_sendable, on_established, *_, on_user_timeout, _) = bound
        EV_DATA, EV_FIN, EV_MORE, EV_EST, *_, EV_TIMER, _ = _EV_CODES
        words = self._ev_words
        (stride, o_conn, o_len, o_timer, o_rip, o_reason, o_rport, o_lport, p_stride,
         p_data) = self._ev_off
        keep = self._lib.pn_keep
        halves = self._ev_halves
        ptrs = self._ev_ptrs
        conns = self._conns
        buffer = _core.ffi.buffer
        i = start
        self._pending = n
        try:
            while i < n:
                b = i * stride
                t = words[b]
                cid = words[b + o_conn]
                conn = conns[cid] if cid < len(conns) else self._slot(cid)
                i += 1
                if t == EV_DATA:
                    if conn._closed or on_data is None:
                        continue
                    size = words[b + o_len]
                    view = memoryview(buffer(ptrs[(i - 1) * p_stride + p_data], size))
                    i -= 1  # pending until the handler returns a valid count (see poll)
                    try:
                        rem = on_data(conn, view)
                    except BaseException:
                        _discard(view)
                        del view  # keep it out of the traceback (see _discard)
                        raise
                    try:
                        view.release()
                    except BufferError:
                        raise _kept_export(conn, "on_data") from None
                    if type(rem) is not int or not 0 <= rem <= size:
                        rem = _remaining(rem, size, conn, "on_data")
                    i += 1
                    conn._kept = rem
                    if rem and self._stack is not None:  # (the handler may have closed us)
                        keep(self._stack, cid, rem)
                elif t == EV_MORE:
                    if on_more_sendable is not None and not conn._closed:
                        on_more_sendable(conn)
                elif t == EV_EST:
                    self._established(conn, words[b + o_rip], halves[2 * b + o_rport],
                                      halves[2 * b + o_lport], on_established)
                elif t == EV_FIN:
                    if conn._closed or (on_fin is None and on_data is None):
                        continue
                    size = words[b + o_len]
                    # (what a FIN's handlers leave is never presented again: nothing follows)
                    _fin(conn, ptrs[(i - 1) * p_stride + p_data], size, on_data, on_fin)
                elif t == EV_TIMER:
                    if on_user_timeout is not None and not conn._closed:
                        on_user_timeout(conn, words[b + o_timer])
                else:
                    self._ended(conn, t, words[b + o_reason], bound)
        finally:
            self._resume = i

    def _event(self, i: int) -> None:
        """Event `i` of the batch, one the compiled dispatch leaves to Python: ESTABLISHED,
        FIN or an ending (it dispatches DATA, MORE_SENDABLE and USER_TIMEOUT itself)."""
        bound = self._bound
        assert bound is not None
        ev = self._events[i]
        t = ev.type
        conn = self._slot(ev.conn_id)
        if t == _EV_CODES[3]:
            self._established(conn, ev.remote_ip, ev.remote_port, ev.local_port,
                              bound.on_connection_established)
        elif t == _EV_CODES[1]:
            if not conn._closed and (bound.on_fin is not None or bound.on_data is not None):
                _fin(conn, ev.data, ev.len, bound.on_data, bound.on_fin)
        else:
            self._ended(conn, t, ev.reason, bound)

    @staticmethod
    def _established(conn: Connection, rip: int, rport: int, lport: int, fn: Method) -> None:
        if conn._closed or conn._remote_ip != rip or conn._remote_port != rport:
            conn._open(rip, rport, 0)  # a passive open
        conn._local_port = lport
        conn._established = True
        if fn is not None:
            fn(conn)

    @staticmethod
    def _ended(conn: Connection, t: int, reason: int, bound: Bound) -> None:
        """A closing event: the connection's slot is free once its method returns."""
        if conn._closed:
            return
        slot = _ENDINGS.get(t)
        if slot is None:
            return
        conn.end_reason = _REASONS.get(reason) or end_reason_text(t, reason)
        try:
            fn = bound[slot]
            if fn is not None:
                fn(conn)
        finally:
            conn._closed = True
            conn._established = False

    def _poll_error(self, rc: int) -> None:
        raise _core.core_error(rc, f"poll on {self._link.describe()}", self._link.last_error())

    def undispatched(self) -> bool:
        """Events of the last batch still wait (a handler raised mid-batch): the stack
        must not be pumped before the next poll dispatches them."""
        if self._fast is not None:
            return bool(self._fast.undispatched())
        return self._resume < self._pending

    # ------------------------------------------------------------ for the layers above

    @property
    def poller(self) -> Any:
        """The compiled Poller behind poll() (pollnet._pnfast), or None on the Python path."""
        return self._fast

    def pump(self, now_ns: int = 0) -> None:
        """Receive, run timers, transmit -- and leave every event queued for the next
        poll(). Nothing while a batch waits undispatched or once the endpoint is closed."""
        if self._stack is None or self.undispatched():
            return
        rc = _core.lib.pn_poll(self._stack, now_ns, self._events, 0)
        if rc < 0:
            self._poll_error(rc)


# Ending event -> its method's index in Bound.
_ENDINGS: dict[int, int] = {_EV_CODES[k]: slot for k, slot in ((4, 4), (5, 5), (6, 6), (9, 6),
                                                               (7, 7))}


def _fin(conn: Connection, data: Any, size: int, on_data: Method, on_fin: Method) -> int:
    """A FIN event, in efvitcp's order: bytes that arrived with the FIN (beyond what
    on_data kept last time) go to on_data first; on_fin gets what on_data left.
    Returns the bytes left unconsumed."""
    view = memoryview(_core.ffi.buffer(data, size))
    fresh = on_data is not None and size > conn._kept
    conn._kept = 0
    rem = size
    try:
        if fresh:
            assert on_data is not None
            rem = _remaining(on_data(conn, view) or 0, size, conn, "on_data")
        if on_fin is not None:
            tail = view[size - rem :]
            try:
                rem = _remaining(on_fin(conn, tail) or 0, rem, conn, "on_fin")
            finally:
                tail.release()
        elif not fresh:
            rem = 0
    except BaseException:
        _discard(view)
        del view
        raise
    try:
        view.release()
    except BufferError:
        raise _kept_export(conn, "on_fin" if on_fin is not None else "on_data") from None
    return rem


def _discard(view: memoryview) -> None:
    """Release a data view on the way out of a handler that raised (if it can be).

    A view still exported (the handler's frame, kept by the traceback, holds e.g. an
    ffi.from_buffer of it) cannot be released; if it then ends up in a reference cycle,
    CPython 3.11's GC clears it while exported and crashes. Releasing it here, and not
    keeping it in our own frames, makes that window as small as Python allows."""
    with contextlib.suppress(BufferError):
        view.release()


def _kept_export(conn: Connection, method: str) -> EfviError:
    return EfviError(
        f"{method} on connection {conn.conn_id} kept a buffer export of its data view "
        "(e.g. numpy.frombuffer) past the call: the view is the core's receive buffer, valid "
        "only during the call; copy what you keep (bytes(data[:n]))"
    )


def _remaining(rem: object, size: int, conn: Connection, method: str) -> int:
    return checked_remaining(rem, size, f"{method} on connection {conn.conn_id}")
