"""PollTcpClient over the kernel's TCP: non-blocking connect watched with epoll(0)."""

from __future__ import annotations

import errno
import select
import socket
from collections.abc import Callable
from typing import Any

from pollnet._fast import FAST
from pollnet.backends.socket.connection import SocketConnection
from pollnet.backends.socket.options import new_tcp_socket, peer_of, set_nodelay
from pollnet.client_base import PolledClient
from pollnet.config import ClientConfig
from pollnet.connection import ConnectionBase
from pollnet.handler import HandlerCache, HandlerMethods
from pollnet.recvbuf import RecvBuffer
from pollnet.timeouts import IdleTimeouts

_CONNECT_PENDING = (errno.EINPROGRESS, errno.EALREADY, errno.EWOULDBLOCK)


class SocketTcpClient(PolledClient[SocketConnection, socket.socket]):
    """Connects to `server_ip:server_port`, reconnecting every `conn_retry_sec`."""

    def __init__(self, cfg: ClientConfig) -> None:
        super().__init__(cfg)
        self.cfg = cfg
        self._addr = (cfg.server_ip, cfg.server_port)
        self._timeouts = IdleTimeouts(cfg.send_timeout_sec, cfg.recv_timeout_sec)
        self._buf = RecvBuffer(cfg.recv_buf_size)  # one connection at a time: reused
        self._handlers = HandlerCache()
        self._epoll = select.epoll()
        self._ready = self._epoll.poll
        # With the compiled read a connected client recvs straight away, as pollnet's C++
        # client does (a recv that finds nothing costs less than an epoll_wait first); the
        # Python read would pay for a BlockingIOError instead, so it asks epoll.
        self._direct = FAST is not None
        # What the compiled poll() reads (kept in step by _rebind and _sync).
        self._fast: Any = (None if FAST is None else
                           FAST.PollState(self._closed, timeouts_on=self._timeouts.enabled))

    # ---------------------------------------------------------------- PolledClient's part

    def _read(self, conn: SocketConnection,
              on_data: Callable[[ConnectionBase, memoryview], int]) -> None:
        if self._direct or conn.redeliver or self._ready(0):
            conn.read(on_data)

    def _check_connect(self, methods: HandlerMethods, now_ns: int) -> None:
        sock = self._connecting
        assert sock is not None
        if self._ready(0):
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._connect_failed(methods, "connect error", err)
            else:
                self._established(sock, methods, now_ns)
        elif self._connect_timed_out(now_ns):
            self._connect_failed(methods, "connect timeout")

    # ---------------------------------------------------------------- connecting

    def _start_connect(self, methods: HandlerMethods, now_ns: int) -> None:
        self.connect_attempts += 1
        cfg = self.cfg
        try:
            sock = new_tcp_socket(cfg.interface)
        except OSError as exc:
            self._fail(methods, "socket error", exc.errno or 0)
            return
        self._connecting = sock
        try:
            if cfg.local_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if cfg.local_port or cfg.local_ip:
                sock.bind((cfg.local_ip or "0.0.0.0", cfg.local_port))
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

    def _abandon_connect(self) -> None:
        sock = self._connecting
        if sock is not None:
            self._connecting = None
            sock.close()  # also leaves the epoll set


if FAST is not None:  # poll() compiled: a method of the class (pollnet._pnfast.compiled_poll)
    setattr(SocketTcpClient, "poll", FAST.compiled_poll(SocketTcpClient, "socket", "client"))  # noqa: B010
