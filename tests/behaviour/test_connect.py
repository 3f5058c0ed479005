"""Connecting: success, refusal, retries counted in attempts, timeouts, local port."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

import pollnet
from behaviour.efvi_params import assert_connect_fails, kernel_loopback_unreachable
from pollnet.config import AnyConfig, EfviConfig
from pollnet.testing import (
    PairMaker,
    RecordingHandler,
    free_port,
    poll_for,
    poll_until,
    with_sections,
)


def _unused_port_config(cfg: AnyConfig, **client: object) -> AnyConfig:
    """Client aimed at a loopback port nothing listens on."""
    return with_sections(cfg, client={"server_port": free_port(), **client})


def test_connect_announces_both_ends_once(make_pair: PairMaker) -> None:
    pair = make_pair()
    assert pair.client.is_connected
    assert pair.client.conn is pair.client_conn
    assert len(pair.client_handler.connected) == 1
    assert len(pair.server_handler.connected) == 1
    assert pair.server.conn_count == 1
    assert pair.client_handler.disconnected == []
    assert pair.client_handler.connect_failed == 0
    # Each side's peername is the other side's address.
    server_peer = pair.server_conn.peername
    client_peer = pair.client_conn.peername
    assert client_peer == pair.server.address
    # The client's own address: its local_ip, on a real efvi link the stack's, or loopback.
    cfg = pair.config
    own = cfg.client.local_ip or (
        cfg.efvi.local_ip if isinstance(cfg, EfviConfig) and cfg.efvi.local_ip else "127.0.0.1"
    )
    assert server_peer is not None and server_peer[0] == own


def test_refused_connect_reports_failure(backend_config: AnyConfig) -> None:
    client = pollnet.create_client(_unused_port_config(backend_config, conn_retry_sec=0))
    handler = RecordingHandler()
    assert poll_until(lambda: handler.connect_failed == 1, (client, handler))
    assert not client.is_connected
    assert client.conn is None
    assert "refused" in client.last_error.lower()
    assert handler.connected == []


def test_retry_counted_in_attempts(backend_config: AnyConfig) -> None:
    client = pollnet.create_client(_unused_port_config(backend_config, conn_retry_sec=0.001))
    handler = RecordingHandler()
    assert poll_until(lambda: handler.connect_failed >= 3, (client, handler))
    # Only failure events: one per attempt.
    assert {kind for kind, _ in handler.events} == {"connect_failed"}


def test_retry_disabled_then_allow_reconnect_gives_one_more(backend_config: AnyConfig) -> None:
    client = pollnet.create_client(_unused_port_config(backend_config, conn_retry_sec=0))
    handler = RecordingHandler()
    assert poll_until(lambda: handler.connect_failed == 1, (client, handler))
    poll_for(2000, (client, handler))
    assert handler.connect_failed == 1
    client.allow_reconnect()
    assert poll_until(lambda: handler.connect_failed == 2, (client, handler))
    poll_for(2000, (client, handler))
    assert handler.connect_failed == 2


def test_client_connects_once_the_server_appears(backend_config: AnyConfig) -> None:
    cfg = with_sections(backend_config, client={"conn_retry_sec": 0.001})
    client = pollnet.create_client(cfg)
    ch = RecordingHandler()
    assert poll_until(lambda: ch.connect_failed >= 1, (client, ch))
    server = pollnet.create_server(cfg)
    sh = RecordingHandler()
    try:
        assert poll_until(lambda: bool(ch.connected and sh.connected), (server, sh), (client, ch))
        assert client.is_connected
        assert client.last_error == ""
    finally:
        client.close()
        server.close()


@pytest.fixture
def full_backlog_port() -> Iterator[int]:
    """A loopback listener whose accept queue is full, so a further SYN is dropped and a
    connect neither succeeds nor is refused: it can only time out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    yield port
    for s in fillers:
        s.close()
    listener.close()


def test_connect_timeout(backend_config: AnyConfig, full_backlog_port: int) -> None:
    cfg = with_sections(
        backend_config,
        client={"server_ip": "127.0.0.1", "server_port": full_backlog_port,
                "conn_timeout_sec": 0.05, "conn_retry_sec": 0},
    )
    unreachable = kernel_loopback_unreachable(cfg)
    if unreachable is not None:  # efvi: the kernel's listener is out of reach (documented)
        assert_connect_fails(cfg, unreachable)
        return
    client = pollnet.create_client(cfg)
    handler = RecordingHandler()
    assert poll_until(lambda: handler.connect_failed == 1, (client, handler))
    assert "timeout" in client.last_error
    assert handler.connected == []


def test_local_port_is_used(make_pair: PairMaker) -> None:
    port = free_port()
    pair = make_pair(client={"local_port": port})
    peer = pair.server_conn.peername
    assert peer is not None and peer[1] == port


def test_reconnects_after_the_server_drops_it(make_pair: PairMaker) -> None:
    pair = make_pair(client={"conn_retry_sec": 0.001})
    pair.server_conn.close("go away")
    ch, sh = pair.client_handler, pair.server_handler
    assert poll_until(lambda: len(ch.connected) == 2 and len(sh.connected) == 2, pair)
    assert len(ch.disconnected) == 1
    assert ch.disconnected[0].last_error == "remote close"
    assert ch.connected[0] is not ch.connected[1]  # a fresh connection object
    assert pair.client.is_connected


def test_no_reconnect_when_disabled(make_pair: PairMaker) -> None:
    pair = make_pair(client={"conn_retry_sec": 0})
    pair.server_conn.close("go away")
    ch = pair.client_handler
    assert poll_until(lambda: len(ch.disconnected) == 1, pair)
    poll_for(2000, pair)
    assert len(ch.connected) == 1
    assert not pair.client.is_connected
    assert pair.client.last_error == "remote close"
    pair.client.allow_reconnect()
    assert poll_until(lambda: len(ch.connected) == 2, pair)


def test_client_close_reason_and_remote_close(make_pair: PairMaker) -> None:
    pair = make_pair(client={"conn_retry_sec": 0})
    conn = pair.client_conn
    pair.client.close("done here")
    assert not conn.is_connected
    assert conn.last_error == "done here"
    assert pair.client.last_error == "done here"
    sh = pair.server_handler
    assert poll_until(lambda: len(sh.disconnected) == 1, pair)
    assert sh.disconnected[0].last_error == "remote close"
    assert pair.client_handler.disconnected == [conn]


def test_writes_on_a_closed_connection_fail_quietly(make_pair: PairMaker) -> None:
    pair = make_pair(client={"conn_retry_sec": 0})
    conn = pair.client_conn
    conn.close()
    assert conn.write(b"x") is False
    assert conn.write_some(b"x") == -1
    assert conn.write_nonblock(b"x") is False
    pair.poll()
    assert pair.client.write(b"x") is False
    assert pair.client.write_some(b"x") == -1
    assert pair.client.write_nonblock(b"x") is False
