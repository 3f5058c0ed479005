"""Shared pieces of the efvi (efvitcp-level) tests: everything runs on the sim wire in
virtual time. Importing this skips the importing test module when the C core
(`pollnet._pncore`) is not built."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest

from pollnet.backends.efvi.core import binding as _core

if not _core.available():
    pytest.skip(
        f"{_core.LOAD_ERROR}; build the C core with `pip install -e .`",
        allow_module_level=True,
    )

from pollnet.backends.efvi import Connection, SimDriver, SimWire, TcpClient, TcpServer
from pollnet.config import EfviOptions

PORT = 7000


def options(**kw: Any) -> EfviOptions:
    """Small defaults so the tests stay light; each test overrides what it is about."""
    base: dict[str, Any] = {"conn_send_buf_cnt": 64, "recv_buf_cnt": 256,
                            "max_conn_cnt": 16, "max_time_wait_conn_cnt": 16}
    base.update(kw)
    return EfviOptions(**base)


class Pump:
    """Sends `payload` on a connection as fast as sendable() allows; call `pump()` after
    each step (the tests' drivers do it from on_more_sendable and after connect)."""

    def __init__(self, conn: Connection, payload: bytes, chunk: int = 1 << 16,
                 fin: bool = False) -> None:
        self.conn = conn
        self.view = memoryview(payload)
        self.off = 0
        self.chunk = chunk
        self.fin = fin
        self.fin_sent = False

    def pump(self) -> None:
        while self.off < len(self.view):
            n = self.conn.send(self.view[self.off : self.off + self.chunk])
            if n == 0:
                return
            self.off += n
        if self.fin and not self.fin_sent:
            self.conn.send_fin()
            self.fin_sent = True

    @property
    def done(self) -> bool:
        return self.off >= len(self.view)


@dataclass
class Recorder:
    """A handler that records every event and every byte, per connection."""

    accept: bool = True
    consume: bool = True  # False: on_data leaves everything unconsumed (zero window)
    events: list[tuple[str, int]] = field(default_factory=list)
    data: dict[int, bytearray] = field(default_factory=lambda: defaultdict(bytearray))
    fin_data: dict[int, bytes] = field(default_factory=dict)
    conns: list[Connection] = field(default_factory=list)
    timers: list[tuple[int, int, int]] = field(default_factory=list)  # (conn, timer, t_ns)
    asked: list[tuple[str, int]] = field(default_factory=list)
    wire: SimWire | None = None
    pumps: dict[int, Pump] = field(default_factory=dict)  # conn_id -> sender

    def names(self) -> list[str]:
        return [e for e, _ in self.events]

    def count(self, name: str) -> int:
        return sum(1 for e, _ in self.events if e == name)

    def on_connection_established(self, conn: Connection) -> None:
        self.events.append(("established", conn.conn_id))
        self.conns.append(conn)

    def on_connection_refused(self, conn: Connection) -> None:
        self.events.append(("refused", conn.conn_id))

    def on_connection_timeout(self, conn: Connection) -> None:
        self.events.append(("timeout", conn.conn_id))

    def on_connection_reset(self, conn: Connection) -> None:
        self.events.append(("reset", conn.conn_id))

    def on_connection_closed(self, conn: Connection) -> None:
        self.events.append(("closed", conn.conn_id))

    def on_fin(self, conn: Connection, data: memoryview) -> int:
        self.events.append(("fin", conn.conn_id))
        self.data[conn.conn_id] += data
        self.fin_data[conn.conn_id] = bytes(data)
        return 0

    def on_more_sendable(self, conn: Connection) -> None:
        self.events.append(("more_sendable", conn.conn_id))
        pump = self.pumps.get(conn.conn_id)
        if pump is not None:
            pump.pump()

    def send(self, conn: Connection, payload: bytes, fin: bool = False) -> Pump:
        """Start sending payload on conn (the rest follows from on_more_sendable)."""
        pump = Pump(conn, payload, fin=fin)
        self.pumps[conn.conn_id] = pump
        pump.pump()
        return pump

    def on_user_timeout(self, conn: Connection, timer_id: int) -> None:
        self.events.append(("user_timeout", conn.conn_id))
        now = self.wire.now_ns if self.wire is not None else 0
        self.timers.append((conn.conn_id, timer_id, now))

    def on_data(self, conn: Connection, data: memoryview) -> int:
        if not self.consume:
            return len(data)
        self.data[conn.conn_id] += data
        return 0

    def allow_new_connection(self, ip: str, port: int) -> bool:
        self.asked.append((ip, port))
        return self.accept


@dataclass
class Net:
    wire: SimWire
    server: TcpServer
    client: TcpClient
    sh: Recorder
    ch: Recorder
    drive: SimDriver

    def connect(self) -> tuple[Connection, Connection]:
        """Connect the client and return (client conn, server conn), established."""
        c = self.client.connect(self.server.local_ip, PORT)
        ok = self.drive.run_until(lambda: bool(self.sh.conns) and c.is_established,
                                  timeout_ms=10_000)
        assert ok, (self.ch.events, self.sh.events)
        return c, self.sh.conns[-1]


def make_net(opts: EfviOptions | None = None, client_opts: EfviOptions | None = None,
             sh: Recorder | None = None, ch: Recorder | None = None,
             **wire_kw: Any) -> Net:
    wire_kw.setdefault("delay_us", 50)
    wire = SimWire(**wire_kw)
    opts = opts or options()
    server = TcpServer(opts, port=PORT, wire=wire)
    client = TcpClient(client_opts or opts, wire=wire)
    sh = sh or Recorder()
    ch = ch or Recorder()
    sh.wire = ch.wire = wire
    drive = SimDriver(wire, (server, sh), (client, ch))
    return Net(wire, server, client, sh, ch, drive)


def pattern(n: int, seed: int = 0) -> bytes:
    """n deterministic pseudo-random bytes (cheap: sha256 blocks)."""
    out = bytearray()
    block = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}:{block}".encode()).digest()
        block += 1
    return bytes(out[:n])
