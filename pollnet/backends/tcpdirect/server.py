"""PollTcpServer over TCPDirect: zftl_listen, then zftl_accept after each reactor run.

At `max_conns` the server stops calling zftl_accept: further clients wait in the
listener's queue (and behind it the peer's SYN retries) until a slot frees.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from typing import Any

from pollnet.api import Peername, PollConnection
from pollnet.backends.tcpdirect import zf
from pollnet.backends.tcpdirect.connection import TcpdirectConnection
from pollnet.backends.tcpdirect.stack import Stack
from pollnet.config import ServerConfig, TcpdirectOptions
from pollnet.connection import ConnectionBase, error_text
from pollnet.errors import ConfigError, TransportError
from pollnet.handler import HandlerCache, HandlerMethods
from pollnet.recvbuf import RecvBuffer
from pollnet.timeouts import IdleTimeouts

_ffi = zf.ffi
_SIN_LEN = _ffi.sizeof("struct sockaddr_in")


class TcpdirectTcpServer:
    """Listens on `listen_ip:port` (one local address: TCPDirect has no INADDR_ANY) and
    serves up to `max_conns`."""

    def __init__(self, cfg: ServerConfig, opts: TcpdirectOptions) -> None:
        self.cfg = cfg
        self._max = cfg.max_conns
        self._timeouts = IdleTimeouts(cfg.send_timeout_sec, cfg.recv_timeout_sec)
        self._handlers = HandlerCache()
        self._closed: list[ConnectionBase] = []
        self._conns: list[TcpdirectConnection] = []
        self._buffers: list[RecvBuffer] = []  # recycled receive buffers
        self._is_closed = False
        self._in_poll = False
        self._error = ""
        self._zock_out = _ffi.new("struct zft **")
        self._stack = Stack(opts, cfg.interface, "server")
        self._lib = self._stack.lib
        self._st = self._stack.ptr
        self._perform = self._lib.zf_reactor_perform
        self._tl: Any = None
        try:
            self._tl = self._listen(cfg)
        except BaseException:
            self._stack.free()
            raise
        laddr = _ffi.new("struct sockaddr_in *")
        laddr_len = _ffi.new("socklen_t *", _SIN_LEN)
        self._lib.zftl_getname(self._tl, _ffi.cast("struct sockaddr *", laddr), laddr_len)
        self._address: Peername = zf.sockaddr_tuple(laddr)

    def _listen(self, cfg: ServerConfig) -> Any:
        out = _ffi.new("struct zftl **")
        sa = zf.sockaddr_in(cfg.listen_ip, cfg.port)
        rc = self._lib.zftl_listen(
            self._st, _ffi.cast("struct sockaddr *", sa), _SIN_LEN, self._stack.attr, out
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

    def __del__(self) -> None:
        if hasattr(self, "_address"):  # not when __init__ failed
            self.close("server freed")

    # ---------------------------------------------------------------- the pollnet API

    def poll(self, handler: object, now_ns: int | None = None) -> None:
        methods = self._handlers.get(handler)
        if self._is_closed:
            if self._closed:
                self._drain(methods)
            return
        self._in_poll = True
        try:
            self._perform(self._st)
            if len(self._conns) - len(self._closed) < self._max:
                self._accept(methods, now_ns)
            on_data = methods.on_data
            for conn in self._conns:
                if conn._connected:
                    conn.read(on_data)
            if self._timeouts.enabled and self._conns:
                now = time.monotonic_ns() if now_ns is None else now_ns
                check = self._timeouts.check
                for conn in self._conns:
                    if conn._connected:
                        check(conn, now, methods)
            if self._closed:
                self._drain(methods)
        finally:
            self._in_poll = False
            if self._is_closed:
                self._stack.free()  # close() was called from a callback

    @property
    def address(self) -> Peername:
        return self._address

    @property
    def max_conns(self) -> int:
        return self._max

    @property
    def conn_count(self) -> int:
        return len(self._conns) - len(self._closed)

    def foreach_conn(self, fn: Callable[[PollConnection], object]) -> None:
        for conn in list(self._conns):
            if conn._connected:
                fn(conn)

    def close(self, reason: str = "server closed") -> None:
        if self._is_closed:
            return
        self._is_closed = True
        self._error = reason
        self._lib.zftl_free(self._tl)
        self._tl = None
        for conn in list(self._conns):
            conn._shutdown(reason)
        if not self._in_poll:  # else a connection may still hold a lent packet
            self._stack.free()

    @property
    def is_closed(self) -> bool:
        return self._is_closed

    @property
    def last_error(self) -> str:
        return self._error

    # ---------------------------------------------------------------- accepting

    def _accept(self, methods: HandlerMethods, now_ns: int | None) -> None:
        accept = self._lib.zftl_accept
        out = self._zock_out
        while self.conn_count < self._max and not self._is_closed:
            if accept(self._tl, out) < 0:  # -EAGAIN: nobody waiting
                return
            zock = out[0]
            buf = self._buffers.pop() if self._buffers else RecvBuffer(self.cfg.recv_buf_size)
            buf.reset()
            now = time.monotonic_ns() if now_ns is None else now_ns
            conn = TcpdirectConnection(
                self._stack, zock, self._peer_of(zock), buf, self._closed, now
            )
            self._conns.append(conn)
            methods.on_connected(conn)

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
        while closed:
            conn = closed.pop(0)
            assert isinstance(conn, TcpdirectConnection)
            self._conns.remove(conn)
            self._buffers.append(conn._buf)
            methods.on_disconnect(conn)
