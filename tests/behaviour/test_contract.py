"""The handler contract where applications go wrong, identical on every backend.

What `on_tcp_data` may return, what happens when it raises, and what the writes accept
(README, "The handler"; docs/backends.md). Every test runs on every backend row.
"""

from __future__ import annotations

import array
from typing import Any

import pytest

import pollnet
from pollnet.api import PollConnection
from pollnet.testing import PairMaker, RecordingHandler, poll_until
from pollnet.testing.loopback import Pair


class Scripted(RecordingHandler):
    """on_tcp_data answers from a script (one entry per call: a value to return or an
    exception to raise), then returns 0. Every view presented is recorded."""

    def __init__(self, *script: object) -> None:
        super().__init__()
        self.script = list(script)

    def on_tcp_data(self, conn: PollConnection, data: memoryview) -> Any:
        self.presented.append(bytes(data))
        if not self.script:
            self.received += data
            return 0
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step


def _poll_catching(pair: Pair, errors: list[BaseException]) -> None:
    try:
        pair.server.poll(pair.server_handler)
    except Exception as exc:  # what the handler contract makes poll() raise
        # Without its traceback: the frames would hold the server until a GC run (an
        # efvi server's stack, and an af_xdp queue, are freed with the object).
        exc.__traceback__ = None
        errors.append(exc)
    pair.client.poll(pair.client_handler)


def _send_and_poll(pair: Pair, data: bytes, handler: Scripted, calls: int) -> list[Exception]:
    """Write `data` from the client and poll until the server handler was called
    `calls` times; returns what the server's poll() raised on the way."""
    errors: list[BaseException] = []
    assert pair.client_conn.write(data)
    ok = poll_until(lambda: len(handler.presented) >= calls,
                    lambda: _poll_catching(pair, errors))
    assert ok, f"on_tcp_data called {len(handler.presented)} times, expected {calls}"
    return errors  # type: ignore[return-value]


def test_none_means_everything_consumed(make_pair: PairMaker) -> None:
    handler = Scripted(None)
    pair = make_pair(server_handler=handler)
    assert not _send_and_poll(pair, b"abc", handler, 1)
    assert not _send_and_poll(pair, b"def", handler, 2)
    # None consumed "abc": it is not presented again in front of "def".
    assert handler.presented == [b"abc", b"def"]
    assert pair.server_conn.is_connected


@pytest.mark.parametrize("bad", [2.7, -1, 4, 10**30, "1", True],
                         ids=["float", "negative", "beyond-len", "huge", "str", "bool"])
def test_a_wrong_return_is_an_error_and_loses_nothing(make_pair: PairMaker, bad: object) -> None:
    handler = Scripted(bad)
    pair = make_pair(server_handler=handler)
    errors = _send_and_poll(pair, b"abc", handler, 2)
    assert len(errors) == 1, errors
    err = errors[0]
    assert isinstance(err, pollnet.HandlerError)
    text = str(err)
    assert "on_tcp_data" in text and repr(bad) in text and "0..3" in text, text
    # The bytes were kept whole and presented again on the next poll; nothing wedged.
    assert handler.presented[:2] == [b"abc", b"abc"]
    assert not _send_and_poll(pair, b"def", handler, 3)
    assert handler.presented[2] == b"def"
    assert bytes(handler.received) == b"abcdef"
    assert pair.server_conn.is_connected


def test_a_handler_that_raises_gets_the_same_bytes_again(make_pair: PairMaker) -> None:
    boom = RuntimeError("handler bug")
    handler = Scripted(boom)
    pair = make_pair(server_handler=handler)
    errors = _send_and_poll(pair, b"hello", handler, 2)
    assert errors == [boom]
    assert handler.presented[:2] == [b"hello", b"hello"]
    assert not _send_and_poll(pair, b"!", handler, 3)
    assert bytes(handler.received) == b"hello!"
    assert pair.server_conn.is_connected


def test_kept_bytes_survive_a_raise(make_pair: PairMaker) -> None:
    # Two bytes kept, then the handler raises on kept + new: all of it comes back.
    handler = Scripted(2, RuntimeError("bug"))
    pair = make_pair(server_handler=handler)
    assert not _send_and_poll(pair, b"abc", handler, 1)
    errors = _send_and_poll(pair, b"de", handler, 3)
    assert len(errors) == 1
    assert handler.presented == [b"abc", b"bcde", b"bcde"]


@pytest.mark.parametrize("method", ["write", "write_some", "write_nonblock"])
def test_writing_a_str_is_a_type_error(make_pair: PairMaker, method: str) -> None:
    pair = make_pair()
    conn = pair.client_conn
    with pytest.raises(TypeError, match=rf"{method}\(\) takes a bytes-like object.*not 'str'"):
        getattr(conn, method)("a str")
    assert conn.is_connected
    conn.close("done")
    with pytest.raises(TypeError, match=rf"{method}\(\) takes a bytes-like object.*not 'str'"):
        getattr(conn, method)("a str")


@pytest.mark.parametrize("method", ["write", "write_some", "write_nonblock"])
def test_writes_count_bytes_not_items(make_pair: PairMaker, method: str) -> None:
    pair = make_pair()
    conn = pair.client_conn
    words = memoryview(b"abcdefgh").cast("I")  # 2 items of 4 bytes
    ints = array.array("i", [0x64636261, 0x68676665])  # b"abcdefgh" little-endian
    for data in (words, ints):
        result = getattr(conn, method)(data)
        assert result == (8 if method == "write_some" else True), result
        assert conn.is_connected, conn.last_error
    sh = pair.server_handler
    assert poll_until(lambda: len(sh.received) >= 16, pair)
    assert bytes(sh.received) == b"abcdefgh" * 2
