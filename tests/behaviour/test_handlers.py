"""Handlers: any subset of callbacks, pollnet's camelCase names, bound once."""

from __future__ import annotations

from typing import Any

import pollnet
from pollnet.api import PollConnection
from pollnet.config import AnyConfig
from pollnet.testing import PairMaker, RecordingHandler, free_port, poll_until, with_sections


class CamelCase:
    def __init__(self) -> None:
        self.events: list[str] = []
        self.data = bytearray()

    def onTcpConnected(self, conn: PollConnection) -> None:
        self.events.append("connected")

    def onTcpData(self, conn: PollConnection, data: memoryview) -> int:
        self.data += data
        return 0

    def onTcpDisconnect(self, conn: PollConnection) -> None:
        self.events.append("disconnect")

    def onTcpConnectFailed(self) -> None:
        self.events.append("connect_failed")

    def onSendTimeout(self, conn: PollConnection) -> None:
        self.events.append("send_timeout")

    def onRecvTimeout(self, conn: PollConnection) -> None:
        self.events.append("recv_timeout")


def test_camel_case_handler(make_pair: PairMaker) -> None:
    pair = make_pair(connect=False, client={"send_timeout_sec": 0.02, "recv_timeout_sec": 0.02})
    camel = CamelCase()
    targets = [(pair.server, pair.server_handler), (pair.client, camel)]
    # Both ends know of the connection (user-space stacks polled in turn learn of it one
    # poll apart: the server on the client's ACK).
    sh = pair.server_handler
    assert poll_until(lambda: "connected" in camel.events and bool(sh.connected), *targets)
    pair.server_conn.write(b"camel")
    assert poll_until(lambda: camel.data == b"camel", *targets)
    assert poll_until(
        lambda: {"send_timeout", "recv_timeout"} <= set(camel.events), *targets
    )
    pair.server_conn.close()
    assert poll_until(lambda: "disconnect" in camel.events, *targets)


def test_camel_case_connect_failed(backend_config: AnyConfig) -> None:
    cfg = with_sections(backend_config, client={"server_port": free_port(), "conn_retry_sec": 0})
    client = pollnet.create_client(cfg)
    camel = CamelCase()
    assert poll_until(lambda: camel.events == ["connect_failed"], (client, camel))


class OnlyData:
    def __init__(self) -> None:
        self.data = bytearray()

    def on_tcp_data(self, conn: PollConnection, data: memoryview) -> int:
        self.data += data
        return 0


def test_handler_with_only_some_callbacks(make_pair: PairMaker) -> None:
    pair = make_pair(connect=False, server={"recv_timeout_sec": 0.01})
    only = OnlyData()
    nothing = object()  # a handler with no callbacks at all: data is consumed
    targets = [(pair.server, only), (pair.client, nothing)]
    assert poll_until(lambda: pair.client.is_connected and pair.server.conn_count == 1, *targets)
    pair.client.write(b"partial handler")
    assert poll_until(lambda: only.data == b"partial handler", *targets)
    pair.server.foreach_conn(lambda c: c.write(b"ignored"))
    pair.client.close()
    assert poll_until(lambda: pair.server.conn_count == 0, *targets)


class CountingLookups(RecordingHandler):
    """Counts how often the poller looks its callbacks up."""

    lookups = 0

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("on_tcp_") or name.startswith("onTcp"):
            type(self).lookups += 1
        return super().__getattribute__(name)


def test_callbacks_are_resolved_once_not_per_event(make_pair: PairMaker) -> None:
    handler = CountingLookups()
    pair = make_pair(server_handler=handler)
    after_connect = CountingLookups.lookups
    assert after_connect > 0
    for i in range(50):
        pair.client_conn.write(b"%d," % i)
        pair.poll()
    assert poll_until(lambda: handler.received.endswith(b"49,"), pair)
    assert CountingLookups.lookups == after_connect


def test_a_new_handler_object_is_bound_on_its_first_poll(make_pair: PairMaker) -> None:
    pair = make_pair()
    second = RecordingHandler()
    pair.client_conn.write(b"to the second handler")
    assert poll_until(
        lambda: second.received == b"to the second handler",
        (pair.server, second),
        (pair.client, pair.client_handler),
    )
    assert pair.server_handler.received == b""
