"""pytest plugin (entry point `pytest11: pollnet`): loopback fixtures for applications.

    def test_my_protocol(pollnet_pair, poll_until):
        pollnet_pair.client_conn.write(b"ping")
        assert poll_until(lambda: pollnet_pair.server_handler.received == b"ping",
                          pollnet_pair)

`pollnet_backend_config` decides the transport (socket on 127.0.0.1 by default);
override it in a conftest.py to run the same tests on another backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from pollnet.config import AnyConfig
from pollnet.testing.loopback import EchoServer, Pair, loopback_config
from pollnet.testing.polling import poll_until as _poll_until


@pytest.fixture
def pollnet_backend_config() -> AnyConfig:
    """The config the pollnet fixtures use: socket backend, loopback, a free port."""
    return loopback_config()


@pytest.fixture
def pollnet_echo_server(pollnet_backend_config: AnyConfig) -> Iterator[EchoServer]:
    """A polled echo server on a free loopback port; call `.poll()` (or pass it to
    `poll_until`) to run it; `.client_config()` points a client at it."""
    server = EchoServer(pollnet_backend_config)
    yield server
    server.close()


@pytest.fixture
def pollnet_pair(pollnet_backend_config: AnyConfig) -> Iterator[Pair]:
    """A connected server + client with recording handlers; `.poll()` polls both."""
    pair = Pair(pollnet_backend_config)
    yield pair
    pair.close()


@pytest.fixture
def poll_until() -> Callable[..., bool]:
    """`poll_until(cond, *targets, max_polls=None, timeout=5.0) -> bool`."""
    return _poll_until
