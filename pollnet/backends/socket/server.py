"""PollTcpServer over the kernel's TCP: one epoll(0) per poll over listener + connections."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable
from typing import Any

from pollnet._fast import FAST
from pollnet.api import Peername
from pollnet.backends.socket.connection import SocketConnection
from pollnet.backends.socket.options import new_tcp_socket, peer_of, set_nodelay
from pollnet.config import ServerConfig
from pollnet.connection import ConnectionBase, error_text
from pollnet.errors import TransportError
from pollnet.handler import HandlerCache, HandlerMethods
from pollnet.poll_owner import CompiledPollOwner
from pollnet.recvbuf import RecvBuffer
from pollnet.server_base import ServerBase
from pollnet.timeouts import IdleTimeouts

# Events taken per Python poll: epoll.poll() without maxevents allocates room for 1023
# (12 KB) on every call; the rest stay ready (level-triggered) for the next poll.
_MAX_EVENTS = 32


class SocketTcpServer(ServerBase[SocketConnection], CompiledPollOwner):
    """Listens on `listen_ip:port` (SO_REUSEADDR) and serves up to `max_conns`.

    At `max_conns` the listener leaves the epoll set: further clients complete the
    handshake in the kernel's backlog and are accepted when a slot frees.
    """

    def __init__(self, cfg: ServerConfig) -> None:
        super().__init__(cfg)
        self.cfg = cfg
        self._timeouts = IdleTimeouts(cfg.send_timeout_sec, cfg.recv_timeout_sec)
        self._timeouts_on = self._timeouts.enabled
        self._handlers = HandlerCache()
        self._buffers: list[RecvBuffer] = []  # recycled receive buffers
        # _conns is by fd, which a newer connection may take before the old one's
        # notice: the count is kept apart.
        self._count = 0
        try:
            listener = new_tcp_socket(cfg.interface)
        except OSError as exc:
            where = f"server socket on {cfg.interface!r}"
            raise TransportError(error_text(where, exc.errno or 0)) from None
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((cfg.listen_ip, cfg.port))
            listener.listen(socket.SOMAXCONN)
        except OSError as exc:
            listener.close()
            where = f"{cfg.listen_ip}:{cfg.port}"
            raise TransportError(error_text(f"cannot listen on {where}", exc.errno or 0)) from None
        self._listener = listener
        self._lfd = listener.fileno()
        host, port = listener.getsockname()[:2]
        self._address: Peername = (str(host), int(port))
        self._epoll = select.epoll()
        self._ready = self._epoll.poll
        self._epoll.register(self._lfd, select.EPOLLIN)
        self._accepting = True
        self._again: list[SocketConnection] = []
        # What the compiled poll() reads (the handler kept in step by _rebind).
        self._fast: Any = (None if FAST is None else FAST.PollState(
            self._closed, self._conns, self._again, self._epoll.fileno(), self._lfd,
            self._timeouts_on))

    # ---------------------------------------------------------------- the pollnet API

    def poll(self, handler: object, now_ns: int | None = None) -> None:
        """One epoll_wait(0): read the ready connections, accept; then timeouts and
        notices. (The compiled poll, where it runs, reads and dispatches the ready
        connections itself and comes here when timeouts or redeliveries need it.)"""
        self._poll_py(handler, now_ns)

    def _poll_py(self, handler: object, now_ns: int | None) -> None:
        methods = self._handlers.methods
        if methods is None or methods.handler is not handler:
            methods = self._handlers.get(handler)
        if self._again:
            self._read_again(methods.on_data)
        events = self._ready(0, _MAX_EVENTS)
        if events:
            conns = self._conns
            on_data = methods.on_data
            for fd, _ in events:
                conn = conns.get(fd)
                if conn is not None:
                    if conn._connected:
                        try:
                            conn.read(on_data)
                        except BaseException:
                            if conn.redeliver:
                                self._again.append(conn)
                            raise
                elif fd == self._lfd and self._accepting:
                    self._accept(methods, now_ns)
        if self._timeouts_on and self._conns:
            now = time.monotonic_ns() if now_ns is None else now_ns
            check = self._timeouts.check
            for conn in self._conns.values():
                if conn._connected:
                    check(conn, now, methods)
        if self._closed:
            self._drain(methods)

    def _on_listener(self, now_ns: int | None) -> None:
        methods = self._handlers.methods
        if self._accepting and methods is not None:
            self._accept(methods, now_ns)

    def _read_again(self, on_data: Callable[[ConnectionBase, memoryview], int]) -> None:
        """Connections whose handler raised last poll: their bytes again, new or not."""
        again = self._again
        while again:
            conn = again.pop()
            if conn._connected and conn.redeliver:
                try:
                    conn.read(on_data)
                except BaseException:
                    if conn.redeliver:
                        again.append(conn)
                    raise

    @property
    def conn_count(self) -> int:
        return self._count - len(self._closed)

    def _stop_listening(self) -> None:
        self._accepting = False
        self._listener.close()

    # ---------------------------------------------------------------- accepting

    def _accept(self, methods: HandlerMethods, now_ns: int | None) -> None:
        while self.conn_count < self._max:
            try:
                sock, _ = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                # The client gave up between the handshake and accept (ECONNABORTED, ...).
                self._error = error_text("accept error", exc.errno or 0)
                return
            try:
                sock.setblocking(False)
                set_nodelay(sock)
            except OSError as exc:
                self._error = error_text("accepted socket setup error", exc.errno or 0)
                sock.close()
                continue
            fd = sock.fileno()
            buf = self._buffers.pop() if self._buffers else RecvBuffer(self.cfg.recv_buf_size)
            buf.reset()
            now = time.monotonic_ns() if now_ns is None else now_ns
            conn = SocketConnection(sock, peer_of(sock), buf, self._closed, now)
            self._conns[fd] = conn
            self._count += 1
            self._epoll.register(fd, select.EPOLLIN)
            methods.on_connected(conn)
        self._set_accepting(False)

    def _set_accepting(self, on: bool) -> None:
        if on == self._accepting or self._is_closed:
            return
        self._accepting = on
        self._epoll.modify(self._lfd, select.EPOLLIN if on else 0)

    # ---------------------------------------------------------------- disconnect notices

    def _drain(self, methods: HandlerMethods) -> None:
        closed = self._closed
        while closed:
            conn = closed.pop(0)
            assert isinstance(conn, SocketConnection)
            # The fd may already belong to a newer connection: remove only our own entry.
            if self._conns.get(conn.fd) is conn:
                del self._conns[conn.fd]
            self._count -= 1
            self._buffers.append(conn._buf)
            methods.on_disconnect(conn)
        if self._count < self._max:
            self._set_accepting(True)


if FAST is not None:  # poll() compiled: a method of the class (pollnet._pnfast.compiled_poll)
    setattr(SocketTcpServer, "poll", FAST.compiled_poll(SocketTcpServer, "socket", "server"))  # noqa: B010
