"""Closing: peer close, peer reset, and exactly one disconnect notice per connection."""

from __future__ import annotations

from collections import Counter

from pollnet.api import PollConnection
from pollnet.testing import PairMaker, RecordingHandler, poll_for, poll_until


def test_peer_close_is_remote_close(make_pair: PairMaker) -> None:
    pair = make_pair(client={"conn_retry_sec": 0})
    server_conn = pair.server_conn
    server_conn.close("bye")
    ch = pair.client_handler
    assert poll_until(lambda: len(ch.disconnected) == 1, pair)
    assert ch.disconnected[0].last_error == "remote close"
    assert not pair.client.is_connected
    assert server_conn.last_error == "bye"


def test_peer_reset(make_pair: PairMaker) -> None:
    # Closing with unread bytes in the receive queue makes the kernel send a RST.
    pair = make_pair(client={"conn_retry_sec": 0})
    server_conn = pair.server_conn
    pair.client_conn.write(b"never read")
    poll_for(50, (pair.client, pair.client_handler))  # the server is not polled: unread
    server_conn.close("reset it")
    ch = pair.client_handler
    assert poll_until(lambda: len(ch.disconnected) == 1, pair)
    assert "reset" in ch.disconnected[0].last_error.lower()


def test_data_queued_before_close_is_delivered(make_pair: PairMaker) -> None:
    pair = make_pair(client={"conn_retry_sec": 0})
    pair.server_conn.write(b"last words")
    pair.server_conn.close()
    ch = pair.client_handler
    assert poll_until(lambda: len(ch.disconnected) == 1, pair)
    assert ch.received == b"last words"


class _CloseTwiceOnData(RecordingHandler):
    def on_tcp_data(self, conn: PollConnection, data: memoryview) -> int:
        super().on_tcp_data(conn, data)
        conn.close("first")
        conn.close("second")
        return 0


def test_disconnect_exactly_once_whatever_closes_it(make_pair: PairMaker) -> None:
    sh = _CloseTwiceOnData()
    pair = make_pair(client={"conn_retry_sec": 0}, server_handler=sh)
    conn = pair.server_conn
    pair.client_conn.write(b"hello")
    assert poll_until(lambda: len(sh.disconnected) == 1, pair)
    assert conn.last_error == "first"
    conn.close("again")
    pair.server.close()
    pair.client.close()
    poll_for(100, pair)
    for h in (sh, pair.client_handler):
        counts = Counter(id(c) for c in h.disconnected)
        assert set(counts.values()) == {1}
        assert {id(c) for c in h.connected} == set(counts)


def test_close_outside_poll_is_announced_on_next_poll(make_pair: PairMaker) -> None:
    pair = make_pair(client={"conn_retry_sec": 0})
    conn = pair.client_conn
    conn.close("outside")
    assert pair.client_handler.disconnected == []  # no handler outside poll
    pair.client.poll(pair.client_handler)
    assert pair.client_handler.disconnected == [conn]


def test_user_data_is_per_connection(make_pair: PairMaker) -> None:
    pair = make_pair(client={"conn_retry_sec": 0.001})
    first = pair.client_conn
    assert first.user_data is None
    first.user_data = {"session": 1}
    pair.server_conn.user_data = "server side"
    assert pair.server_conn.user_data == "server side"
    pair.server_conn.close()
    ch = pair.client_handler
    assert poll_until(lambda: len(ch.connected) == 2, pair)
    second = ch.connected[1]
    assert second.user_data is None
    assert first.user_data == {"session": 1}


def test_data_on_the_handshake_ack_then_close_is_a_fin(make_pair: PairMaker) -> None:
    # The client writes from on_tcp_connected, so its handshake-completing ACK and the
    # first bytes can reach the server in one poll (on efvi: the server's connection is
    # announced after those bytes were taken in). Nothing is unread when the server
    # closes, so the client sees an orderly close, not a reset.
    sh = RecordingHandler()
    ch = RecordingHandler(on_connected=lambda conn: conn.write(b"hello"))
    pair = make_pair(server_handler=sh, client_handler=ch)
    assert poll_until(lambda: bytes(sh.received) == b"hello", pair)
    pair.server_conn.close("done")
    assert poll_until(lambda: len(ch.disconnected) == 1, pair)
    assert ch.disconnected[0].last_error == "remote close"
