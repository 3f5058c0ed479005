"""The pollnet interface on the efvi backend: what the shared behaviour suite cannot show
(its kernel-peer tests, done here with efvi peers), and the adapter's own choices."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from netns.netns import Pair as NetnsPair

import pollnet
from efvi_adapter.kernel import kernel_listener, require_link
from pollnet.api import PollConnection
from pollnet.backends.efvi.adapter.conn import MAX_TIMER_MS, timer_plan
from pollnet.backends.efvi.adapter.factory import sim_net
from pollnet.backends.efvi.link.sim import SYN
from pollnet.config import AnyConfig, EfviConfig, config_from_dict
from pollnet.testing import Pair, RecordingHandler, free_port, poll_for, poll_until


def sim_config(**sections: dict[str, Any]) -> AnyConfig:
    port = free_port()
    data: dict[str, Any] = {
        "backend": "efvi",
        "efvi": {"link": "sim", "conn_send_buf_cnt": 64},
        "client": {"server_ip": "127.0.0.1", "server_port": port, "conn_retry_sec": 0.01},
        "server": {"listen_ip": "127.0.0.1", "port": port},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return config_from_dict(data)


@pytest.fixture
def pair() -> Iterator[Pair]:
    p = Pair(sim_config())
    yield p
    p.close()


# ---------------------------------------------------------------- connecting


def test_connect_timeout_when_syns_are_lost() -> None:
    # The efvi version of the suite's full-backlog test: a server whose SYNs vanish.
    cfg = sim_config(client={"conn_timeout_sec": 0.05, "conn_retry_sec": 0})
    server = pollnet.create_server(cfg)
    assert isinstance(cfg, EfviConfig)
    wire = sim_net(cfg.efvi).wire
    for nth in range(1, 10):
        wire.drop_tcp(nth, flags=SYN)
    client = pollnet.create_client(cfg)
    handler, sh = RecordingHandler(), RecordingHandler()
    assert poll_until(lambda: handler.connect_failed == 1, (client, handler), (server, sh))
    assert "timeout" in client.last_error
    assert handler.connected == [] and sh.connected == []


def test_unanswered_arp_fails_the_connect() -> None:
    # 10.0.77.77 is on the sim subnet and nobody has it: ARP fails, the stack gives up.
    cfg = sim_config(client={"server_ip": "10.0.77.77", "conn_timeout_sec": 0,
                             "conn_retry_sec": 0})
    client = pollnet.create_client(cfg)
    handler = RecordingHandler()
    assert poll_until(lambda: handler.connect_failed == 1, (client, handler), timeout=30)
    assert "timeout" in client.last_error


def test_names_on_the_sim_wire() -> None:
    # Two servers under one name (different ports), one on 0.0.0.0, one on a subnet address.
    a = sim_config()
    b = sim_config(server={"listen_ip": "0.0.0.0"})
    c = sim_config(server={"listen_ip": "10.0.5.5"}, client={"server_ip": "10.0.5.5"})
    for cfg, peer_ip in ((a, "127.0.0.1"), (b, "127.0.0.1"), (c, None)):
        p = Pair(cfg)
        try:
            assert p.client_conn.peername == (cfg.client.server_ip, cfg.client.server_port)
            peer = p.server_conn.peername
            assert peer is not None
            if peer_ip is not None:
                assert peer[0] == peer_ip
            else:
                assert peer[0].startswith("10.0.")
        finally:
            p.close()


def test_listening_twice_on_one_name_is_an_error() -> None:
    cfg = sim_config()
    server = pollnet.create_server(cfg)
    with pytest.raises(pollnet.errors.TransportError, match="already listened on"):
        pollnet.create_server(cfg)
    server.close()


# ---------------------------------------------------------------- data


def test_write_larger_than_the_send_buffers_arrives_in_order(pair: Pair) -> None:
    big = bytes(i % 251 for i in range(1_000_000))  # 64 KB of send buffers here
    assert pair.client_conn.write(big)
    assert pair.client_conn.write(b"after")
    assert pair.client_conn.write_some(b"x") == 0  # queued bytes go first
    sh = pair.server_handler
    assert poll_until(lambda: len(sh.received) == len(big) + 5, pair, timeout=30)
    assert bytes(sh.received) == big + b"after"


class _BigReply(RecordingHandler):
    def on_tcp_data(self, conn: PollConnection, data: memoryview) -> int:
        super().on_tcp_data(conn, data)
        conn.write(b"r" * 300_000)  # from inside a callback: the rest goes out later
        return 0


def test_write_from_a_callback_larger_than_the_buffers() -> None:
    sh = _BigReply()
    p = Pair(sim_config(), server_handler=sh)
    try:
        p.client_conn.write(b"go")
        ch = p.client_handler
        assert poll_until(lambda: len(ch.received) == 300_000, p, timeout=30)
    finally:
        p.close()


def test_write_nonblock_fails_while_a_write_is_queued(pair: Pair) -> None:
    conn = pair.client_conn
    assert conn.write(b"q" * 500_000)
    assert conn.write_nonblock(b"y") is False
    assert "send buffer full" in conn.last_error


def test_data_sent_before_accept_waits_in_the_backlog() -> None:
    cfg = sim_config(server={"max_conns": 1}, client={"conn_retry_sec": 0})
    server = pollnet.create_server(cfg)
    sh = RecordingHandler()
    clients = [(pollnet.create_client(cfg), RecordingHandler()) for _ in range(2)]
    targets = [(server, sh), *clients]
    assert poll_until(lambda: all(h.connected for _, h in clients), *targets)
    for i, (client, _) in enumerate(clients):
        client.write(b"<%d>" % i)
    poll_for(200, *targets)
    assert server.conn_count == 1 and len(sh.received) == 3
    sh.connected[0].close("next")
    assert poll_until(lambda: len(sh.received) == 6, *targets)
    assert len(sh.connected) == 2 and server.conn_count == 1


# ---------------------------------------------------------------- timers


def test_timer_plan_splits_long_timeouts() -> None:
    assert timer_plan(0) == (0, 0)
    assert timer_plan(0.0001) == (1, 1)
    assert timer_plan(0.05) == (50, 1)
    ms, chunks = timer_plan(200)
    assert chunks == 4 and ms <= MAX_TIMER_MS and ms * chunks >= 200_000


# ---------------------------------------------------------------- a kernel peer


@pytest.mark.parametrize("link", ["af_packet", "af_xdp"])
def test_write_to_a_kernel_peer_drained_by_a_thread(link: str) -> None:
    # The efvi version of the suite's kernel-peer write test: the kernel of namespace a
    # listens; our client stack in namespace b writes far more than its buffers hold.
    require_link(link)
    with NetnsPair(offload=False) as topo:
        listener, cfg = kernel_listener(topo, link)
        client = pollnet.create_client(cfg)
        handler = RecordingHandler()
        big = bytes(i % 253 for i in range(4 * 1024 * 1024))
        got = bytearray()

        def drain(sock: socket.socket) -> None:
            with sock:
                while len(got) < len(big):
                    data = sock.recv(1 << 16)
                    if not data:
                        return
                    got.extend(data)

        try:
            assert poll_until(lambda: bool(handler.connected), (client, handler))
            peer, _ = listener.accept()
            reader = threading.Thread(target=drain, args=(peer,), daemon=True)
            reader.start()
            assert client.write(big)
            assert poll_until(lambda: len(got) == len(big), (client, handler), timeout=60)
            reader.join(timeout=10)
            assert bytes(got) == big
        finally:
            client.close()
            listener.close()
            del client


def test_a_client_reopened_at_once_gets_its_af_xdp_queue() -> None:
    # The kernel frees a closed AF_XDP socket's queue a little later (a work item); the
    # link waits for that unless one of our own links holds the queue. Interface indexes
    # are per namespace: the server's pn0 in namespace a (often the same index as the
    # client's pn0 in b) counted as holding the client's queue, so reopening failed at once
    # ("queue 0 already has an AF_XDP socket": 32 of 40 reopens here before).
    require_link("af_xdp")
    with NetnsPair(offload=False) as topo:
        sip = topo.free_ip(3)
        cfg = config_from_dict({
            "backend": "efvi",
            "efvi": {"link": "af_xdp", "interface": "pn0", "local_ip": topo.free_ip(4)},
            "server": {"listen_ip": sip, "port": free_port(), "interface": f"{topo.a.name}/pn0"},
            "client": {"server_ip": sip, "interface": f"{topo.b.name}/pn0"},
        })
        server = pollnet.create_server(cfg)
        try:
            for _ in range(20):
                pollnet.create_client(cfg).close()
        finally:
            server.close()


def test_a_dropped_server_frees_its_name_and_address() -> None:
    import gc

    cfg = sim_config()
    server = pollnet.create_server(cfg)
    assert isinstance(cfg, EfviConfig)
    net = sim_net(cfg.efvi)
    hosts = len(net.wire._hosts)
    del server
    gc.collect()
    assert len(net.wire._hosts) == hosts - 1
    again = pollnet.create_server(cfg)  # the same name and port: free again
    again.close()


def test_close_after_a_queued_write_delivers_it_then_fin(pair: Pair) -> None:
    big = b"w" * 400_000  # far more than the 64 KB of send buffers
    assert pair.client_conn.write(big)
    pair.client.close("done")
    sh = pair.server_handler
    assert poll_until(lambda: len(sh.disconnected) == 1, pair, timeout=30)
    assert len(sh.received) == len(big)
    assert sh.disconnected[0].last_error == "remote close"
