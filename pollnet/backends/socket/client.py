"""PollTcpClient over the kernel's TCP: non-blocking connect watched with epoll(0)."""

from __future__ import annotations

import errno
import select
import socket
import time

from pollnet.api import BytesLike
from pollnet.backends.socket.connection import SocketConnection
from pollnet.backends.socket.options import new_tcp_socket, peer_of, set_nodelay
from pollnet.config import ClientConfig
from pollnet.connection import ConnectionBase, error_text
from pollnet.handler import HandlerCache, HandlerMethods
from pollnet.recvbuf import RecvBuffer
from pollnet.timeouts import IdleTimeouts, seconds_to_ns

_NEVER = 1 << 62
_CONNECT_PENDING = (errno.EINPROGRESS, errno.EALREADY, errno.EWOULDBLOCK)


class SocketTcpClient:
    """Connects to `server_ip:server_port`, reconnecting every `conn_retry_sec`."""

    def __init__(self, cfg: ClientConfig) -> None:
        self.cfg = cfg
        self._addr = (cfg.server_ip, cfg.server_port)
        self._retry_ns = seconds_to_ns(cfg.conn_retry_sec)
        self._connect_timeout_ns = seconds_to_ns(cfg.conn_timeout_sec)
        self._timeouts = IdleTimeouts(cfg.send_timeout_sec, cfg.recv_timeout_sec)
        self._timeouts_on = self._timeouts.enabled
        self._buf = RecvBuffer(cfg.recv_buf_size)  # one connection at a time: reused
        self._handlers = HandlerCache()
        self._epoll = select.epoll()
        self._ready = self._epoll.poll
        self._closed: list[ConnectionBase] = []
        self._conn: SocketConnection | None = None
        self._connecting: socket.socket | None = None
        self._connect_deadline_ns = 0
        self._next_connect_ns = 0  # the first poll connects
        self._error = ""
        self.connect_attempts = 0

    # ---------------------------------------------------------------- the pollnet API

    def poll(self, handler: object, now_ns: int | None = None) -> None:
        methods = self._handlers.methods
        if methods is None or methods.handler is not handler:
            methods = self._handlers.get(handler)
        conn = self._conn
        if conn is not None:
            if self._ready(0):
                conn.read(methods.on_data)
            if self._timeouts_on and conn._connected:
                self._timeouts.check(
                    conn, time.monotonic_ns() if now_ns is None else now_ns, methods
                )
            if self._closed:
                self._drain(methods)
            return
        if self._closed:
            self._drain(methods)
        self._poll_connect(methods, time.monotonic_ns() if now_ns is None else now_ns)

    def allow_reconnect(self) -> None:
        self._next_connect_ns = 0

    @property
    def conn(self) -> SocketConnection | None:
        conn = self._conn
        return conn if conn is not None and conn._connected else None

    @property
    def is_connected(self) -> bool:
        conn = self._conn
        return conn is not None and conn._connected

    @property
    def last_error(self) -> str:
        conn = self._conn
        if conn is not None and conn._error:
            return conn._error
        return self._error

    def write(self, data: BytesLike, more: bool = False) -> bool:
        conn = self._conn
        return conn.write(data, more) if conn is not None else False

    def write_some(self, data: BytesLike, more: bool = False) -> int:
        conn = self._conn
        return conn.write_some(data, more) if conn is not None else -1

    def write_nonblock(self, data: BytesLike, more: bool = False) -> bool:
        conn = self._conn
        return conn.write_nonblock(data, more) if conn is not None else False

    def close(self, reason: str = "closed by application") -> None:
        if self._conn is not None:
            self._conn.close(reason)
        elif self._connecting is not None:
            self._abandon_connect()
            self._error = reason

    # ---------------------------------------------------------------- connecting

    def _poll_connect(self, methods: HandlerMethods, now_ns: int) -> None:
        sock = self._connecting
        if sock is None:
            if now_ns >= self._next_connect_ns:
                self._next_connect_ns = now_ns + self._retry_ns if self._retry_ns else _NEVER
                self._start_connect(methods, now_ns)
            return
        if self._ready(0):
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._connect_failed(methods, "connect error", err)
            else:
                self._established(sock, methods, now_ns)
        elif self._connect_timeout_ns and now_ns >= self._connect_deadline_ns:
            self._connect_failed(methods, "connect timeout")

    def _start_connect(self, methods: HandlerMethods, now_ns: int) -> None:
        self.connect_attempts += 1
        cfg = self.cfg
        try:
            sock = new_tcp_socket(cfg.interface)
        except OSError as exc:
            self._error = error_text("socket error", exc.errno or 0)
            methods.on_connect_failed()
            return
        self._connecting = sock
        try:
            if cfg.local_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("0.0.0.0", cfg.local_port))
            set_nodelay(sock)
            err = sock.connect_ex(self._addr)
        except OSError as exc:
            self._connect_failed(methods, "connect setup error", exc.errno or 0)
            return
        if err == 0:
            self._established(sock, methods, now_ns)
        elif err in _CONNECT_PENDING:
            self._epoll.register(sock.fileno(), select.EPOLLOUT)
            self._connect_deadline_ns = now_ns + self._connect_timeout_ns
        else:
            self._connect_failed(methods, "connect error", err)

    def _established(self, sock: socket.socket, methods: HandlerMethods, now_ns: int) -> None:
        peer = peer_of(sock)
        if peer is None:
            self._connect_failed(methods, "connect error: peer vanished")
            return
        if sock.getsockname()[:2] == peer:
            # TCP simultaneous open onto our own ephemeral port: not a server.
            self._connect_failed(methods, "connect error: connected to itself")
            return
        fd = sock.fileno()
        try:
            self._epoll.modify(fd, select.EPOLLIN)
        except FileNotFoundError:
            self._epoll.register(fd, select.EPOLLIN)
        self._connecting = None
        self._buf.reset()
        self._error = ""
        conn = SocketConnection(sock, peer, self._buf, self._closed, now_ns)
        self._conn = conn
        methods.on_connected(conn)

    def _connect_failed(self, methods: HandlerMethods, reason: str, err: int = 0) -> None:
        self._abandon_connect()
        self._error = error_text(reason, err)
        methods.on_connect_failed()

    def _abandon_connect(self) -> None:
        sock = self._connecting
        if sock is not None:
            self._connecting = None
            sock.close()  # also leaves the epoll set

    # ---------------------------------------------------------------- disconnect notices

    def _drain(self, methods: HandlerMethods) -> None:
        closed = self._closed
        while closed:
            conn = closed.pop(0)
            if conn is self._conn:
                self._conn = None
                self._error = conn._error
            methods.on_disconnect(conn)
