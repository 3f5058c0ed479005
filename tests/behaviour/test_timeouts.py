"""Send and receive idle timeouts: the events happen; durations are never asserted."""

from __future__ import annotations

import time

from pollnet.api import PollConnection
from pollnet.testing import PairMaker, RecordingHandler, poll_for, poll_until


def test_send_timeout_on_client(make_pair: PairMaker) -> None:
    pair = make_pair(client={"send_timeout_sec": 0.05})
    ch = pair.client_handler
    assert poll_until(lambda: ch.send_timeouts >= 1, pair)
    assert ch.recv_timeouts == 0
    assert next(e for e in ch.events if e[0] == "send_timeout")[1] is pair.client_conn


def test_recv_timeout_on_client(make_pair: PairMaker) -> None:
    pair = make_pair(client={"recv_timeout_sec": 0.05})
    ch = pair.client_handler
    assert poll_until(lambda: ch.recv_timeouts >= 1, pair)
    assert ch.send_timeouts == 0


def test_timeouts_on_server_connections(make_pair: PairMaker) -> None:
    pair = make_pair(server={"send_timeout_sec": 0.05, "recv_timeout_sec": 0.05})
    sh = pair.server_handler
    assert poll_until(lambda: sh.send_timeouts >= 1 and sh.recv_timeouts >= 1, pair)


def test_timeouts_repeat_while_idle(make_pair: PairMaker) -> None:
    pair = make_pair(client={"send_timeout_sec": 0.02})
    ch = pair.client_handler
    assert poll_until(lambda: ch.send_timeouts >= 3, pair)


class _CloseWhenIdle(RecordingHandler):
    def on_recv_timeout(self, conn: PollConnection) -> None:
        super().on_recv_timeout(conn)
        conn.close("idle")


def test_timeout_handler_may_close(make_pair: PairMaker) -> None:
    ch = _CloseWhenIdle()
    pair = make_pair(client={"recv_timeout_sec": 0.02, "conn_retry_sec": 0}, client_handler=ch)
    assert poll_until(lambda: len(ch.disconnected) == 1, pair)
    assert ch.disconnected[0].last_error == "idle"


def test_zero_disables_timeouts(make_pair: PairMaker) -> None:
    pair = make_pair()
    poll_for(3000, pair)
    for h in (pair.client_handler, pair.server_handler):
        assert h.send_timeouts == 0 and h.recv_timeouts == 0


def test_traffic_keeps_send_timeout_quiet(make_pair: PairMaker) -> None:
    # Writes every round for four send timeouts: each write starts the idle period again,
    # so none fires (if writes did not re-arm it, three would). The clock only drives the
    # loop; nothing asserts a duration.
    pair = make_pair(client={"send_timeout_sec": 0.1})
    end = time.monotonic() + 0.4
    rounds = 0
    while time.monotonic() < end or rounds < 100:
        pair.client_conn.write(b"k")
        pair.poll()
        rounds += 1
    assert pair.client_handler.send_timeouts == 0
    # Stopping the writes: it fires (the same run can tell the two apart).
    assert poll_until(lambda: pair.client_handler.send_timeouts >= 1, pair)
