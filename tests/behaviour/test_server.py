"""Server: max_conns with the kernel backlog, foreach_conn, close."""

from __future__ import annotations

import pytest
from tcpdirect.shim import REAL_CLIENT_INTERFACE

import pollnet
from behaviour.efvi_params import assert_second_client_refused, one_address_per_stack
from pollnet.api import PollTcpClient, PollTcpServer
from pollnet.config import AnyConfig, TcpdirectConfig
from pollnet.testing import RecordingHandler, poll_for, poll_until, with_sections


def _clients(cfg: AnyConfig, n: int) -> list[tuple[PollTcpClient, RecordingHandler]] | None:
    """n clients of one config; None where that is the documented difference (efvi on a
    real link: one address per stack), after asserting it."""
    if one_address_per_stack(cfg):
        assert_second_client_refused(cfg)
        return None
    if isinstance(cfg, TcpdirectConfig) and cfg.client.interface == REAL_CLIENT_INTERFACE:
        pytest.skip("TCPDirect's emulator: only the first of several client stacks on one "
                    "emulated interface connected here; a NIC filters per stack")
    return [(pollnet.create_client(cfg), RecordingHandler()) for _ in range(n)]


def _server(cfg: AnyConfig) -> tuple[PollTcpServer, RecordingHandler, AnyConfig]:
    server = pollnet.create_server(cfg)
    cfg = with_sections(cfg, client={"server_port": server.address[1], "conn_retry_sec": 0})
    return server, RecordingHandler(), cfg


def test_max_conns_leaves_extra_clients_in_the_backlog(backend_config: AnyConfig) -> None:
    server, sh, cfg = _server(with_sections(backend_config, server={"max_conns": 2}))
    clients = _clients(cfg, 3)
    if clients is None:
        server.close()
        return
    targets = [(server, sh), *clients]
    try:
        # The kernel completes all three handshakes; the server takes only two.
        assert poll_until(lambda: all(h.connected for _, h in clients), *targets)
        assert poll_until(lambda: server.conn_count == 2, *targets)
        assert server.max_conns == 2
        # Every client writes; the one left in the backlog keeps its bytes waiting.
        for i, (client, _) in enumerate(clients):
            assert client.write(b"<%d>" % i)
        poll_for(500, *targets)
        assert server.conn_count == 2
        assert len(sh.connected) == 2
        assert len(sh.received) == 6  # two of the three 3-byte messages
        got = {bytes(sh.received[:3]), bytes(sh.received[3:])}
        waiting = ({b"<0>", b"<1>", b"<2>"} - got).pop()
        # Free a slot: the waiting one is accepted, and its bytes arrive.
        sh.connected[0].close("make room")
        assert poll_until(lambda: waiting in sh.received, *targets)
        assert server.conn_count == 2
        assert len(sh.connected) == 3
        assert all(h.connect_failed == 0 for _, h in clients)
    finally:
        for client, _ in clients:
            client.close()
        server.close()


def test_foreach_conn_visits_every_live_connection(backend_config: AnyConfig) -> None:
    server, sh, cfg = _server(backend_config)
    clients = _clients(cfg, 3)
    if clients is None:
        server.close()
        return
    targets = [(server, sh), *clients]
    try:
        assert poll_until(lambda: server.conn_count == 3, *targets)
        seen: list[object] = []
        server.foreach_conn(seen.append)
        assert len(seen) == 3 and set(map(id, seen)) == set(map(id, sh.connected))
        # Broadcast through foreach_conn.
        server.foreach_conn(lambda c: c.write(b"all"))
        assert poll_until(lambda: all(h.received == b"all" for _, h in clients), *targets)
        # Closing from inside foreach_conn is allowed.
        server.foreach_conn(lambda c: c.close("kick"))
        assert server.conn_count == 0
        seen.clear()
        server.foreach_conn(seen.append)
        assert seen == []
        assert poll_until(lambda: len(sh.disconnected) == 3, *targets)
        assert poll_until(lambda: all(len(h.disconnected) == 1 for _, h in clients), *targets)
    finally:
        for client, _ in clients:
            client.close()
        server.close()


def test_server_close_closes_everything(backend_config: AnyConfig) -> None:
    server, sh, cfg = _server(backend_config)
    clients = _clients(cfg, 2)
    if clients is None:
        server.close()
        return
    targets = [(server, sh), *clients]
    assert poll_until(lambda: server.conn_count == 2, *targets)
    assert not server.is_closed
    server.close("shutting down")
    assert server.is_closed
    assert server.conn_count == 0
    server.close("twice is harmless")
    assert poll_until(lambda: len(sh.disconnected) == 2, *targets)
    assert {c.last_error for c in sh.disconnected} == {"shutting down"}
    assert poll_until(lambda: all(len(h.disconnected) == 1 for _, h in clients), *targets)
    # Nothing listens any more: a new client is refused.
    late, lh = pollnet.create_client(cfg), RecordingHandler()
    assert poll_until(lambda: lh.connect_failed == 1, (late, lh), (server, sh))
    assert len(sh.disconnected) == 2


def test_server_address_reports_the_chosen_port(backend_config: AnyConfig) -> None:
    server = pollnet.create_server(with_sections(backend_config, server={"port": 0}))
    try:
        host, port = server.address
        assert host == backend_config.server.listen_ip and port > 0
    finally:
        server.close()
