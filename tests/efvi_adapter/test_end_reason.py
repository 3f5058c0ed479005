"""pollnet's last_error carries why the efvi stack ended a connection (the efvitcp-level
Connection.end_reason): peers on the sim wire that never read, never ACK, or reset."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pollnet.backends.efvi.core import binding as _core

if not _core.available():
    pytest.skip(f"{_core.LOAD_ERROR}; build the C core with `pip install -e .`",
                allow_module_level=True)

import pollnet
from pollnet.api import PollConnection, PollTcpClient
from pollnet.backends.efvi import Connection, TcpServer
from pollnet.backends.efvi.adapter.factory import sim_net
from pollnet.config import EfviConfig, EfviOptions, config_from_dict
from pollnet.testing import RecordingHandler, free_port, poll_until

STEP_NS = 20_000_000  # virtual time per round: the stack's timers run in virtual time


class Peer:
    """An efvitcp-level server on the pollnet sim wire: reads nothing when `read` is
    False (its window closes for good); `conns` are its connections."""

    def __init__(self, read: bool) -> None:
        self.read = read
        self.conns: list[Connection] = []

    def on_connection_established(self, conn: Connection) -> None:
        self.conns.append(conn)

    def on_data(self, conn: Connection, data: memoryview) -> int:
        return 0 if self.read else len(data)


def setup(ip: str, read: bool, **efvi: Any) -> tuple[PollTcpClient, RecordingHandler, TcpServer,
                                                     Peer, Callable[[], None]]:
    port = free_port()
    cfg = config_from_dict({
        "backend": "efvi",
        "efvi": {"link": "sim", "conn_send_buf_cnt": 64, **efvi},
        "client": {"server_ip": ip, "server_port": port, "conn_retry_sec": 1000},
        "server": {"listen_ip": "127.0.0.1", "port": port},
    })
    assert isinstance(cfg, EfviConfig)
    net = sim_net(cfg.efvi)
    server = TcpServer(EfviOptions(link="sim", conn_recv_buf_size=4096, sim=cfg.efvi.sim),
                       port=port, wire=net.wire, local_ip=ip)
    peer = Peer(read)
    client = pollnet.create_client(cfg)
    handler = RecordingHandler()

    def step() -> None:
        client.poll(handler, net.wire.now_ns + STEP_NS)
        if not server.closed:
            server.poll(peer, net.wire.now_ns)

    assert poll_until(lambda: handler.connected and peer.conns, step, max_polls=1000,
                      timeout=30)
    return client, handler, server, peer, step


def ended(handler: RecordingHandler) -> Callable[[], bool]:
    return lambda: bool(handler.disconnected)


def test_a_peer_that_never_reads_ends_with_the_zero_window_reason() -> None:
    client, handler, server, _, step = setup("10.0.61.1", read=False,
                                             zero_window_timeout_ms=2000)
    conn: PollConnection = handler.connected[0]
    assert conn.write(bytes(300_000))  # what does not fit stays queued
    assert poll_until(ended(handler), step, max_polls=20_000, timeout=60)
    want = "connection timeout: peer's window stayed zero (zero_window_timeout_ms)"
    assert conn.last_error.startswith(want)
    assert client.last_error.startswith(want)
    client.close()
    server.close()


def test_a_peer_that_never_acks_ends_with_the_retries_reason() -> None:
    client, handler, server, _, step = setup("10.0.61.2", read=True, tcp_retries=3,
                                             max_rto_ms=1000)
    server.close()  # gone without a RST: nothing ACKs again
    conn: PollConnection = handler.connected[0]
    assert conn.write(b"hello")
    assert poll_until(ended(handler), step, max_polls=20_000, timeout=60)
    want = "connection timeout: retransmissions unacknowledged (tcp_retries)"
    assert conn.last_error.startswith(want)
    assert client.last_error.startswith(want)
    client.close()


def test_a_reset_says_reset_by_peer() -> None:
    client, handler, server, peer, step = setup("10.0.61.3", read=True)
    peer.conns[0].close()  # RST
    assert poll_until(ended(handler), step, max_polls=1000, timeout=30)
    conn = handler.disconnected[0]
    assert "reset by peer" in conn.last_error
    assert "reset by peer" in client.last_error
    client.close()
    server.close()
