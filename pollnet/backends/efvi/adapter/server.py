"""PollTcpServer over the efvi stack (`TcpServer`), with a backlog.

efvitcp has no accept queue: its stack completes every handshake it has a slot for. The
stack here gets more slots than `max_conns` (`max(efvi.max_conn_cnt, 2 * max_conns)`);
connections past `max_conns` complete the handshake and wait unannounced in a FIFO
backlog, like the kernel's accept queue: their bytes are held (up to the receive buffer,
then the window closes) and handed to `on_tcp_data` right after `on_tcp_connected` when a
slot frees. Past every slot a SYN goes unanswered and the client's SYN retransmission
tries again later: waiting, never refused.
"""

from __future__ import annotations

import contextlib
import random
import weakref
from collections import deque

from pollnet.api import Peername
from pollnet.backends.efvi.adapter.base import (
    Base,
    StackEvents,
    compiled_poll,
    in_netns,
    split_interface,
    stack_options,
)
from pollnet.backends.efvi.adapter.conn import EfviPollConnection
from pollnet.backends.efvi.adapter.sim_net import ANY
from pollnet.backends.efvi.efvitcp.connection import Connection
from pollnet.backends.efvi.efvitcp.server import TcpServer
from pollnet.backends.efvi.errors import EfviError
from pollnet.config import EfviOptions, ServerConfig
from pollnet.connection import ConnectionBase
from pollnet.errors import TransportError
from pollnet.handler import HandlerCache, HandlerMethods
from pollnet.server_base import ServerBase


class EfviTcpServer(Base, ServerBase[EfviPollConnection]):
    """Listens on `listen_ip:port` and serves up to `max_conns` (see the module doc)."""

    def __init__(self, cfg: ServerConfig, efvi: EfviOptions) -> None:
        super().__init__(efvi, cfg.send_timeout_sec, cfg.recv_timeout_sec,
                         min(efvi.conn_recv_buf_size, cfg.recv_buf_size))
        self.cfg = cfg
        slots = max(efvi.max_conn_cnt, 2 * cfg.max_conns)
        netns, ifname = split_interface(cfg.interface or efvi.interface)
        net = self.net
        listen_ip = cfg.listen_ip
        try:
            if net is not None:
                local = net.host_address(listen_ip)
                options = stack_options(efvi, ifname, "", cfg.recv_buf_size)
                options = options.model_copy(update={"max_conn_cnt": slots})
                server = TcpServer(options, wire=net.wire, local_ip=local)
            else:
                local = "" if listen_ip == ANY else listen_ip
                options = stack_options(efvi, ifname, local, cfg.recv_buf_size)
                options = options.model_copy(update={"max_conn_cnt": slots})
                with in_netns(netns):
                    server = TcpServer(options)
        except EfviError as exc:
            raise TransportError(f"cannot create the efvi server stack: {exc}") from None
        self.server = server
        self._start(server, "" if net is not None else netns)
        port = cfg.port
        if net is not None:
            try:
                port = net.register(listen_ip, port, server.local_ip)
            except OSError as exc:
                server.close()
                raise TransportError(f"cannot listen on {listen_ip}:{cfg.port}: {exc}") from None
        self._port = self._listen(port)
        self._address: Peername = (listen_ip, self._port)
        ServerBase.__init__(self, cfg)  # _conns: by id()
        self._handlers = HandlerCache()
        self._methods: HandlerMethods | None = None
        self._events = _ServerEvents(self)
        self._backlog: deque[EfviPollConnection] = deque()
        self._backlog_gone: list[ConnectionBase] = []
        self._compile_poll(self._events, self._closed)

    def _listen(self, port: int) -> int:
        server = self.server
        if port:
            try:
                server.listen(port)
            except EfviError as exc:
                raise TransportError(f"cannot listen on {self.cfg.listen_ip}:{port}: "
                                     f"{exc}") from None
            return port
        for _ in range(100):  # port 0: an ephemeral one, as the kernel picks
            port = random.randint(40000, 59999)
            try:
                server.listen(port)
                return port
            except EfviError:
                continue
        raise TransportError("cannot find a free port to listen on")

    # ---------------------------------------------------------------- the pollnet API

    # poll(): Base's, or the compiled one (Base._compile_poll), over these steps

    def _endpoint_poll(self, now: int) -> None:
        self.server.poll(self._events, now)

    def _after(self, now: int) -> None:
        methods = self._methods
        assert methods is not None
        if self._closed:
            self._drain(methods)
        if self._backlog and not self._is_closed:
            self._backlog_gone.clear()
            self._accept(methods)
        self._idle(not self._backlog or self._is_closed)

    def _stop_listening(self) -> None:
        if self.net is not None:
            self.net.unregister(self.cfg.listen_ip, self._port)
        with contextlib.suppress(EfviError):
            self.server.unlisten(self._port)

    def _after_close(self) -> None:
        while self._backlog:
            waiting = self._backlog.popleft()
            waiting._connected = False
            if not waiting._core.is_closed:
                waiting._core.close()

    # ---------------------------------------------------------------- accepting

    def _new_conn(self, core: Connection) -> None:
        """A handshake completed: announce it, or keep it in the backlog."""
        if self._is_closed:
            core.close()
            return
        ip, port = core.peername
        if self.net is not None:
            ip = self.net.display(ip)
        conn = EfviPollConnection(core, self, (ip, port), self._closed,
                                  self.net.wire.now_ns if self.net is not None else 0)
        core.user_data = conn
        if self.conn_count < self._max and not self._backlog:
            self._announce(conn)
        else:
            conn._announced = False
            conn._closed_queue = self._backlog_gone  # no notice for what was never announced
            self._backlog.append(conn)
            self._idle(False)

    def _announce(self, conn: EfviPollConnection) -> None:
        methods = self._methods
        assert methods is not None
        conn._announced = True
        conn._closed_queue = self._closed
        self._conns[id(conn)] = conn
        conn.arm_timers()
        methods.on_connected(conn)
        if conn._held is not None and conn._connected:
            conn.present_held(methods.on_data)
        if conn._fin_pending and conn._connected:
            conn._shutdown("remote close")

    def _accept(self, methods: HandlerMethods) -> None:
        backlog = self._backlog
        while backlog and self.conn_count < self._max:
            conn = backlog.popleft()
            if conn._connected:
                self._announce(conn)

    # ---------------------------------------------------------------- disconnect notices

    def _drain(self, methods: HandlerMethods) -> None:
        closed = self._closed
        conns = self._conns
        while closed:
            conn = closed.pop(0)
            assert isinstance(conn, EfviPollConnection)
            conns.pop(id(conn), None)
            methods.on_disconnect(conn)


compiled_poll(EfviTcpServer)


class _ServerEvents(StackEvents):
    """The efvitcp-level handler: events of the server's stack as pollnet callbacks."""

    __slots__ = ("_s",)

    def __init__(self, server: EfviTcpServer) -> None:
        super().__init__()
        self._s = weakref.proxy(server)  # no cycle through the stack (see the client's)

    def on_connection_established(self, core: Connection) -> None:
        self._s._new_conn(core)

    def on_data(self, core: Connection, data: memoryview) -> int:
        conn = core.user_data
        methods = self.m
        if conn is None or methods is None:
            return 0
        if not conn._connected:
            core.close()  # bytes for a closed connection: RST, as the kernel does
            return 0
        if not conn._announced:
            held: int = conn.hold(data)
            return held
        rem: int = conn.deliver(methods.on_data, data)
        return rem

    def on_fin(self, core: Connection, data: memoryview) -> int:
        conn = core.user_data
        methods = self.m
        if conn is None or methods is None or not conn._connected:
            return 0
        conn._fin_seen = True
        if not conn._announced:
            if len(data):
                conn.hold(data)
            conn._fin_pending = True
            return 0
        if len(data) > conn._kept:
            conn.deliver(methods.on_data, data)
        if conn._connected:
            conn._shutdown("remote close")
        return 0

    def on_user_timeout(self, core: Connection, timer_id: int) -> None:
        conn = core.user_data
        methods = self.m
        if conn is not None and methods is not None and conn._connected and conn._announced:
            conn.timer_fired(timer_id, methods.on_send_timeout, methods.on_recv_timeout)
