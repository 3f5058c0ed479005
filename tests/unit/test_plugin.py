"""The pytest plugin's fixtures, used the way an application's tests would use them."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import pollnet
from pollnet.testing import EchoServer, Pair, RecordingHandler, poll_for


def test_echo_server_fixture(
    pollnet_echo_server: EchoServer, poll_until: Callable[..., bool]
) -> None:
    client = pollnet.create_client(pollnet_echo_server.client_config())
    handler = RecordingHandler(on_connected=lambda conn: conn.write(b"ping"))
    try:
        assert poll_until(lambda: handler.received == b"ping", pollnet_echo_server,
                          (client, handler))
        assert pollnet_echo_server.handler.received == b"ping"
        assert pollnet_echo_server.port > 0
    finally:
        client.close()


def test_pair_fixture(pollnet_pair: Pair, poll_until: Callable[..., bool]) -> None:
    assert pollnet_pair.client.is_connected
    pollnet_pair.client_conn.write(b"hello")
    assert poll_until(lambda: pollnet_pair.server_handler.received == b"hello", pollnet_pair)
    pollnet_pair.server_conn.write(b"world")
    assert poll_until(lambda: pollnet_pair.client_handler.received == b"world", pollnet_pair)


def test_poll_until_is_bounded_by_polls(poll_until: Callable[..., bool]) -> None:
    rounds: list[int] = []
    assert poll_until(lambda: False, lambda: rounds.append(1), max_polls=10) is False
    assert len(rounds) == 10


def test_poll_until_is_bounded_by_time(poll_until: Callable[..., bool]) -> None:
    assert poll_until(lambda: False, lambda: None, timeout=0.01) is False


def test_poll_until_checks_before_polling(poll_until: Callable[..., bool]) -> None:
    rounds: list[int] = []
    assert poll_until(lambda: True, lambda: rounds.append(1))
    assert rounds == []


def test_poll_until_rejects_what_it_cannot_poll(poll_until: Callable[..., bool]) -> None:
    with pytest.raises(TypeError, match="cannot poll"):
        poll_until(lambda: True, 42)


def test_poll_for_runs_exactly(pollnet_pair: Pair) -> None:
    rounds: list[int] = []
    poll_for(5, lambda: rounds.append(1), pollnet_pair)
    assert len(rounds) == 5
