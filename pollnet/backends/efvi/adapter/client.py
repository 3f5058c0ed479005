"""PollTcpClient over the efvi stack (`TcpClient`): connect, reconnect, one connection.

Each poll is one `pn_poll` (the efvitcp-level `poll`), whose events this class turns
into pollnet callbacks, then the connect bookkeeping (retry every `conn_retry_sec`, the
connect timeout) and the disconnect notices.
"""

from __future__ import annotations

import errno
import weakref

from pollnet.backends.efvi.adapter.base import (
    Base,
    StackEvents,
    compiled_poll,
    dead,
    in_netns,
    split_interface,
    stack_options,
)
from pollnet.backends.efvi.adapter.conn import EfviPollConnection
from pollnet.backends.efvi.adapter.sim_net import is_loopback
from pollnet.backends.efvi.efvitcp.client import TcpClient
from pollnet.backends.efvi.efvitcp.connection import Connection
from pollnet.backends.efvi.errors import EfviError
from pollnet.client_base import ClientBase
from pollnet.config import ClientConfig, EfviOptions
from pollnet.handler import HandlerCache, HandlerMethods

# Core slots: the connection, and one more so a reconnect need not wait for the last
# connection's FIN handshake to finish.
CLIENT_SLOTS = 2


class EfviTcpClient(Base, ClientBase[EfviPollConnection, Connection]):
    """Connects to `server_ip:server_port`, reconnecting every `conn_retry_sec`."""

    def __init__(self, cfg: ClientConfig, efvi: EfviOptions) -> None:
        super().__init__(efvi, cfg.send_timeout_sec, cfg.recv_timeout_sec,
                         min(efvi.conn_recv_buf_size, cfg.recv_buf_size))
        self.cfg = cfg
        netns, ifname = split_interface(cfg.interface or efvi.interface)
        options = stack_options(efvi, ifname, "", cfg.recv_buf_size)
        net = self.net
        if net is not None:
            local = net.host_address(efvi.local_ip)
            client = TcpClient(options, wire=net.wire, local_ip=local, max_conns=CLIENT_SLOTS)
            net.name_client(client.local_ip, cfg.server_ip)
        else:
            with in_netns(netns):
                client = TcpClient(options, max_conns=CLIENT_SLOTS)
        self.client = client
        self._start(client, "" if net is not None else netns)
        ClientBase.__init__(self, cfg)
        self._handlers = HandlerCache()
        self._methods: HandlerMethods | None = None
        self._events = _ClientEvents(self)
        self._to_closed_host = False
        self._compile_poll(self._events, self._closed)

    # ---------------------------------------------------------------- the pollnet API

    # poll(): Base's, or the compiled one (Base._compile_poll), over these steps

    def _sim_now(self, now_ns: int | None) -> int:
        assert self.net is not None
        now = self.net.now(now_ns)
        if self._to_closed_host:
            self.net.pump_closed_host()
        return now

    def _endpoint_poll(self, now: int) -> None:
        self.client.poll(self._events, now)

    def _after(self, now: int) -> None:
        methods = self._methods
        assert methods is not None
        if self._conn is None:
            if self._connecting is not None:
                if self._connect_timed_out(now):
                    self._connect_failed(methods, "connect timeout")
            elif not self._closed and self._connect_due(now):
                self._start_connect(methods, now)
        if self._closed:
            self._drain(methods)
        self._idle(self._conn is not None)

    # ---------------------------------------------------------------- connecting

    def _start_connect(self, methods: HandlerMethods, now_ns: int) -> None:
        self.connect_attempts += 1
        cfg = self.cfg
        ip = cfg.server_ip
        self._to_closed_host = False
        if self.net is not None:
            ip, self._to_closed_host = self.net.resolve(cfg.server_ip, cfg.server_port)
        elif is_loopback(ip):
            self._fail(methods, f"connect error: {ip} is the kernel's loopback; the efvi "
                       f"stack on {self.client.local_ip} cannot reach it", errno.ENETUNREACH)
            return
        try:
            conn = self._connect(ip, cfg.server_port, cfg.local_port)
        except EfviError as exc:
            self._fail(methods, f"connect error: {exc}")
            return
        self._connecting = conn
        self._connect_deadline_ns = now_ns + self._connect_timeout_ns
        if self._to_closed_host and self.net is not None:
            self.net.pump_closed_host()

    def _connect(self, ip: str, port: int, local_port: int) -> Connection:
        try:
            return self.client.connect(ip, port, local_port)
        except EfviError as exc:
            if exc.symbol != "PN_ENOCONN":
                raise
        # Every slot is still finishing an earlier close: abort those (RST) and retry.
        for old in list(self.client.connections()):
            old.close()
        self.pump()
        return self.client.connect(ip, port, local_port)

    def _established(self, core: Connection) -> None:
        methods = self._methods
        assert methods is not None
        self._connecting = None
        self._to_closed_host = False
        self._error = ""
        cfg = self.cfg
        conn = EfviPollConnection(core, self, (cfg.server_ip, cfg.server_port), self._closed,
                                  self.net.wire.now_ns if self.net is not None else 0)
        core.user_data = conn
        self._conn = conn
        conn.arm_timers()
        methods.on_connected(conn)

    def _connect_ended(self, reason: str, err: int = 0) -> None:
        methods = self._methods
        assert methods is not None
        self._connecting = None
        self._to_closed_host = False
        self._fail(methods, reason, err)

    def _abandon_connect(self) -> None:
        core = self._connecting
        if core is not None:
            self._connecting = None
            self._to_closed_host = False
            core.close()  # RST (nothing if the SYN was never answered)


compiled_poll(EfviTcpClient)


class _ClientEvents(StackEvents):
    """The efvitcp-level handler: events of the client's stack as pollnet callbacks."""

    __slots__ = ("_c",)

    def __init__(self, client: EfviTcpClient) -> None:
        super().__init__()
        # A proxy: the stack holds this handler, and must not be part of a reference
        # cycle (its memoryviews over the event array cannot be cleared by the GC).
        self._c = weakref.proxy(client)

    def on_connection_established(self, core: Connection) -> None:
        c = self._c
        if core is c._connecting:
            c._established(core)
        else:
            core.close()  # not ours (cannot happen on a client stack): refuse it

    def on_connection_refused(self, core: Connection) -> None:
        if core is self._c._connecting:
            self._c._connect_ended("connect error", errno.ECONNREFUSED)

    def on_connection_timeout(self, core: Connection) -> None:
        c = self._c
        if core is c._connecting:
            c._connect_ended(f"connect timeout: {core.end_reason}")
            return
        dead(core, f"connection timeout: {core.end_reason}", errno.ETIMEDOUT)

    def on_data(self, core: Connection, data: memoryview) -> int:
        conn = core.user_data
        methods = self.m
        if conn is None or methods is None:
            return 0
        if not conn._connected:
            core.close()  # bytes for a closed connection: RST, as the kernel does
            return 0
        rem: int = conn.deliver(methods.on_data, data)
        return rem

    def on_fin(self, core: Connection, data: memoryview) -> int:
        conn = core.user_data
        methods = self.m
        if conn is None or methods is None or not conn._connected:
            return 0
        conn._fin_seen = True
        if len(data) > conn._kept:
            conn.deliver(methods.on_data, data)
        if conn._connected:
            conn._shutdown("remote close")
        return 0

    def on_user_timeout(self, core: Connection, timer_id: int) -> None:
        conn = core.user_data
        methods = self.m
        if conn is not None and methods is not None and conn._connected:
            conn.timer_fired(timer_id, methods.on_send_timeout, methods.on_recv_timeout)
