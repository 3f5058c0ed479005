"""Handler resolution: either naming, defaults for missing callbacks, bound once."""

from __future__ import annotations

import pytest

from pollnet.handler import CALLBACK_NAMES, HandlerCache, bind_handler


class Snake:
    def on_tcp_data(self, conn: object, data: memoryview) -> int:
        return 7

    def on_tcp_connect_failed(self) -> None:
        pass


class Camel:
    def onTcpData(self, conn: object, data: memoryview) -> int:
        return 5


class Both(Snake):
    def onTcpData(self, conn: object, data: memoryview) -> int:
        return 9


def test_snake_case_found() -> None:
    m = bind_handler(Snake())
    assert m.on_data(None, memoryview(b"x")) == 7


def test_camel_case_found() -> None:
    m = bind_handler(Camel())
    assert m.on_data(None, memoryview(b"x")) == 5


def test_snake_case_wins_over_camel_case() -> None:
    assert bind_handler(Both()).on_data(None, memoryview(b"x")) == 7


def test_missing_callbacks_get_harmless_defaults() -> None:
    m = bind_handler(object())
    assert m.on_data(None, memoryview(b"abc")) == 0  # consumes everything
    assert m.on_connected(None) is None
    assert m.on_disconnect(None) is None
    assert m.on_connect_failed() is None
    assert m.on_send_timeout(None) is None
    assert m.on_recv_timeout(None) is None


def test_every_callback_has_both_names() -> None:
    assert all(len(names) == 2 for names in CALLBACK_NAMES.values())
    assert {n for names in CALLBACK_NAMES.values() for n in names} >= {
        "onTcpData",
        "onTcpConnected",
        "onTcpDisconnect",
        "onTcpConnectFailed",
        "onSendTimeout",
        "onRecvTimeout",
    }


def test_a_non_callable_attribute_is_an_error() -> None:
    class Bad:
        on_tcp_data = 3

    with pytest.raises(TypeError, match="on_tcp_data is not callable"):
        bind_handler(Bad())


def test_cache_rebinds_only_for_a_different_handler() -> None:
    cache = HandlerCache()
    a, b = Snake(), Snake()
    first = cache.get(a)
    assert cache.get(a) is first
    second = cache.get(b)
    assert second is not first and second.handler is b
