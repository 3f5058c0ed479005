"""PollTcpServer over TCPDirect: zftl_listen, and a zf_muxer over listener and zockets.

One `zf_muxer_wait(timeout 0)` a poll runs the reactor and names the zockets with news, so
a poll costs the same whatever the number of idle connections. The muxer is
edge-triggered: a zocket reported once is read until empty (or, past the per-poll bound,
again next poll), and the listener is accepted from until zftl_accept says -EAGAIN, later
if `max_conns` stopped us.
"""

from __future__ import annotations

import errno
import select
import time
from typing import Any

from pollnet._fast import FAST
from pollnet.api import Peername
from pollnet.backends.tcpdirect import zf
from pollnet.backends.tcpdirect.connection import TcpdirectConnection
from pollnet.backends.tcpdirect.stack import Stack
from pollnet.config import ServerConfig, TcpdirectOptions
from pollnet.connection import error_text
from pollnet.errors import ConfigError, TransportError
from pollnet.handler import HandlerCache, HandlerMethods
from pollnet.poll_owner import CompiledPollOwner
from pollnet.recvbuf import RecvBuffer
from pollnet.server_base import ServerBase
from pollnet.timeouts import IdleTimeouts

_ffi = zf.ffi
_SIN_LEN = _ffi.sizeof("struct sockaddr_in")
MAX_EVENTS = 64  # waitables reported per poll; the rest stay ready for the next one
_LISTENER = 0  # muxer user data of the listener; connections count from 1
_CONN_EVENTS = select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR  # TCPDirect: ask for all


class TcpdirectTcpServer(ServerBase[TcpdirectConnection], CompiledPollOwner):
    """Listens on `listen_ip:port` (one local address: TCPDirect has no INADDR_ANY) and
    serves up to `max_conns`."""

    def __init__(self, cfg: ServerConfig, opts: TcpdirectOptions) -> None:
        super().__init__(cfg)  # _conns: by muxer user data
        self.cfg = cfg
        self._timeouts = IdleTimeouts(cfg.send_timeout_sec, cfg.recv_timeout_sec)
        self._handlers = HandlerCache()
        self._next_key = _LISTENER + 1  # never reused: a stale event finds nothing
        # Read to the bound, or their handler raised, last poll: read first this one.
        self._more: list[TcpdirectConnection] = []
        self._buffers: list[RecvBuffer] = []  # recycled receive buffers
        self._accept_pending = True
        self._in_poll = False
        self._zock_out = _ffi.new("struct zft **")
        self._event = _ffi.new("struct epoll_event *")
        self._events = _ffi.new("struct epoll_event[]", MAX_EVENTS)
        self._stack = Stack(opts, cfg.interface, "server")
        self._lib = lib = self._stack.lib
        self._tl: Any = None
        self._tl_waitable: Any = None
        self._mux: Any = None
        try:
            self._tl = self._listen(cfg)
            mux_out = _ffi.new("struct zf_muxer_set **")
            rc = lib.zf_muxer_alloc(self._stack.ptr, mux_out)
            if rc < 0:
                raise TransportError(error_text("zf_muxer_alloc failed", -rc))
            self._mux = mux_out[0]
            self._tl_waitable = lib.zftl_to_waitable(self._tl)
            self._watch(self._tl_waitable, select.EPOLLIN, _LISTENER)
        except BaseException:
            self._free_transport()
            raise
        self._wait = lib.zf_muxer_wait
        self._stack._attach(zf.address(self._stack.ptr), zf.address(lib.zf_reactor_perform),
                            zf.address(self._mux), zf.address(self._wait))
        # What the compiled poll() reads (kept in step by _rebind and _sync).
        self._fast: Any = (None if FAST is None else FAST.PollState(
            self._closed, self._conns, self._more, timeouts_on=self._timeouts.enabled,
            stack=self._stack))
        laddr = _ffi.new("struct sockaddr_in *")
        laddr_len = _ffi.new("socklen_t *", _SIN_LEN)
        lib.zftl_getname(self._tl, _ffi.cast("struct sockaddr *", laddr), laddr_len)
        self._address: Peername = zf.sockaddr_tuple(laddr)

    def _listen(self, cfg: ServerConfig) -> Any:
        out = _ffi.new("struct zftl **")
        sa = zf.sockaddr_in(cfg.listen_ip, cfg.port)
        rc = self._lib.zftl_listen(
            self._stack.ptr, _ffi.cast("struct sockaddr *", sa), _SIN_LEN, self._stack.attr, out
        )
        if rc == -errno.EOPNOTSUPP:
            raise ConfigError(
                f"server.listen_ip = {cfg.listen_ip!r}: TCPDirect listens on one local "
                "address, not on all of them; set server.listen_ip to the address of "
                f"the interface {cfg.interface!r}"
            )
        if rc < 0:
            where = f"cannot listen on {cfg.listen_ip}:{cfg.port} (zftl_listen)"
            raise TransportError(error_text(where, -rc))
        return out[0]

    def _watch(self, waitable: Any, events: int, key: int) -> None:
        ev = self._event
        ev.events = events
        ev.data.u64 = key
        rc = self._lib.zf_muxer_add(self._mux, waitable, ev)
        if rc < 0:
            raise TransportError(error_text("zf_muxer_add failed", -rc))

    def _free_transport(self) -> None:
        """Listener, muxer, stack: in that order, after every zocket was freed."""
        lib = self._lib
        self._stack._attach(0, 0)  # the compiled poll stops using the muxer
        if self._tl is not None:
            if self._tl_waitable is not None:
                lib.zf_muxer_del(self._tl_waitable)
                self._tl_waitable = None
            lib.zftl_free(self._tl)
            self._tl = None
        if self._mux is not None:
            lib.zf_muxer_free(self._mux)
            self._mux = None
        self._stack.free()

    def __del__(self) -> None:
        if hasattr(self, "_address"):  # not when __init__ failed
            self.close("server freed")

    # ---------------------------------------------------------------- the pollnet API

    def poll(self, handler: object, now_ns: int | None = None) -> None:
        """One zf_muxer_wait(0): read the ready zockets, accept; then timeouts and notices.
        (The compiled poll, where it runs, reads the ready zockets itself and comes here
        when accepting, timeouts, queued writes or leftover reads need it.)"""
        self._poll_py(handler, now_ns)

    def _poll_py(self, handler: object, now_ns: int | None) -> None:
        methods = self._handlers.get(handler)
        if self._is_closed:
            if self._closed:
                self._drain(methods)
            return
        self._in_poll = True
        try:
            self._poll(methods, now_ns)
        finally:
            self._in_poll = False
            if self._is_closed:
                self._free_transport()  # close() was called from a callback
            self._sync()

    def _poll(self, methods: HandlerMethods, now_ns: int | None) -> None:
        events = self._events
        n: int = self._wait(self._mux, events, MAX_EVENTS, 0)  # runs the reactor too
        if self._stack.queued:
            self._stack.flush()
        on_data = methods.on_data
        more = self._more
        if more:
            batch = more[:]
            more.clear()
            for k, again in enumerate(batch):
                try:
                    if again._connected and again.read(on_data):
                        more.append(again)
                except BaseException:
                    # Read the rest next poll, this one too if its handler raised.
                    more += batch[k if again.redeliver else k + 1:]
                    self._keep_unread(n)
                    raise
        conns = self._conns
        for i in range(n):
            key = events[i].data.u64
            if key == _LISTENER:
                self._accept_pending = True
                continue
            ready = conns.get(key)
            if ready is not None and ready._connected:
                try:
                    if ready.read(on_data):
                        more.append(ready)
                except BaseException:
                    if ready.redeliver:
                        more.append(ready)
                    self._keep_unread(n, i + 1)
                    raise
        if self._accept_pending and self.conn_count < self._max and not self._is_closed:
            self._accept(methods, now_ns)
        if self._timeouts.enabled and conns:
            now = time.monotonic_ns() if now_ns is None else now_ns
            check = self._timeouts.check
            for conn in conns.values():
                if conn._connected:
                    check(conn, now, methods)
        if self._closed:
            self._drain(methods)

    def _keep_unread(self, n: int, start: int = 0) -> None:
        """A handler raised: the muxer's events from `start` on are not read this poll.
        The muxer reports a zocket once (edge-triggered), so they wait in `_more` (and
        the listener in `_accept_pending`) for the next poll instead of being lost."""
        events, conns, more = self._events, self._conns, self._more
        for i in range(start, n):
            key = events[i].data.u64
            if key == _LISTENER:
                self._accept_pending = True
            elif (conn := conns.get(key)) is not None and conn._connected and conn not in more:
                more.append(conn)

    # ---------------------------------------------------------------- the compiled poll

    def _on_listener(self, now_ns: int | None) -> None:
        """The compiled poll saw the listener ready: accept, as the Python poll would."""
        self._accept_pending = True
        methods = self._handlers.methods
        try:
            if methods is not None and self.conn_count < self._max and not self._is_closed:
                self._accept(methods, now_ns)
        finally:
            self._sync()

    def _listener_ready(self) -> None:
        """The compiled poll stopped at a raising handler before it reached the listener's
        event: accept at the next poll."""
        self._accept_pending = True
        self._sync()

    def _sync(self) -> None:
        """Tell the compiled poll whether the next poll needs this Python one."""
        if self._fast is not None:
            self._fast.slow = self._accept_pending or self._is_closed

    def _after_close(self) -> None:
        fast = self._fast
        if fast is not None and fast.in_poll:  # the compiled poll frees it when done
            fast.slow = fast.free_after = True
        elif not self._in_poll:  # else a connection may still hold a lent packet
            self._free_transport()

    # ---------------------------------------------------------------- accepting

    def _accept(self, methods: HandlerMethods, now_ns: int | None) -> None:
        accept = self._lib.zftl_accept
        to_waitable = self._lib.zft_to_waitable
        out = self._zock_out
        on_data = methods.on_data
        while self.conn_count < self._max and not self._is_closed:
            if accept(self._tl, out) < 0:  # -EAGAIN: nobody waiting
                self._accept_pending = False
                return
            zock = out[0]
            key = self._next_key
            self._next_key = key + 1
            buf = self._buffers.pop() if self._buffers else RecvBuffer(self.cfg.recv_buf_size)
            buf.reset()
            now = time.monotonic_ns() if now_ns is None else now_ns
            conn = TcpdirectConnection(
                self._stack, zock, self._peer_of(zock), buf, self._closed, now
            )
            conn.key = key
            self._conns[key] = conn
            waitable = to_waitable(zock)
            self._watch(waitable, _CONN_EVENTS, key)
            conn._waitable = waitable
            methods.on_connected(conn)
            # Bytes that came with the connection raised no edge we were watching for.
            try:
                if conn._connected and conn.read(on_data):
                    self._more.append(conn)
            except BaseException:
                if conn.redeliver:
                    self._more.append(conn)
                raise

    def _peer_of(self, zock: Any) -> Peername:
        raddr = _ffi.new("struct sockaddr_in *")
        raddr_len = _ffi.new("socklen_t *", _SIN_LEN)
        self._lib.zft_getname(
            zock, _ffi.NULL, _ffi.NULL, _ffi.cast("struct sockaddr *", raddr), raddr_len
        )
        return zf.sockaddr_tuple(raddr)

    # ---------------------------------------------------------------- disconnect notices

    def _drain(self, methods: HandlerMethods) -> None:
        closed = self._closed
        conns = self._conns
        while closed:
            conn = closed.pop(0)
            assert isinstance(conn, TcpdirectConnection)
            del conns[conn.key]
            self._buffers.append(conn._buf)
            methods.on_disconnect(conn)


if FAST is not None:  # poll() compiled: a method of the class (pollnet._pnfast.compiled_poll)
    setattr(  # noqa: B010
        TcpdirectTcpServer, "poll", FAST.compiled_poll(TcpdirectTcpServer, "tcpdirect", "server")
    )
