"""RecvBuffer: the remaining-bytes bookkeeping, without any transport."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pollnet.recvbuf import RecvBuffer


def _put(buf: RecvBuffer, data: bytes) -> bytes:
    room = buf.room()
    room[: len(data)] = data
    return bytes(buf.fill(len(data)))


def test_consume_all_resets_to_the_front() -> None:
    buf = RecvBuffer(16)
    assert _put(buf, b"abc") == b"abc"
    assert buf.keep(0)
    assert buf.pending == 0
    assert buf.room() is buf.view  # no new view when empty


def test_kept_bytes_come_first() -> None:
    buf = RecvBuffer(16)
    _put(buf, b"abcd")
    assert buf.keep(2)
    assert buf.pending == 2
    assert _put(buf, b"ef") == b"cdef"


def test_compaction_when_kept_bytes_reach_the_back_half() -> None:
    buf = RecvBuffer(16)
    _put(buf, b"0123456789")
    assert buf.keep(1)  # head at 9 >= 8: moved to the front
    assert buf.head == 0 and buf.tail == 1
    assert _put(buf, b"ab") == b"9ab"


def test_compaction_when_the_end_is_reached() -> None:
    buf = RecvBuffer(8)
    _put(buf, b"abc")
    assert buf.keep(2)  # head 1, below half: stays
    assert buf.head == 1
    assert _put(buf, b"defgh") == b"bcdefgh"  # tail reaches the end
    assert buf.keep(6)
    assert buf.head == 0 and bytes(buf.view[: buf.tail]) == b"cdefgh"


def test_full_of_unconsumed_bytes_is_reported() -> None:
    buf = RecvBuffer(4)
    _put(buf, b"abcd")
    assert buf.keep(4) is False


@pytest.mark.parametrize("remaining", [None, 0, -3])
def test_nothing_or_negative_means_consumed(remaining: int) -> None:
    buf = RecvBuffer(8)
    _put(buf, b"abc")
    assert buf.keep(remaining)
    assert buf.pending == 0


def test_more_than_presented_is_clamped() -> None:
    buf = RecvBuffer(8)
    _put(buf, b"abc")
    assert buf.keep(100)
    assert buf.pending == 3


def test_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RecvBuffer(0)


@given(
    size=st.integers(min_value=1, max_value=64),
    steps=st.lists(
        st.tuples(st.binary(min_size=1, max_size=64), st.integers(min_value=0, max_value=80)),
        max_size=40,
    ),
)
def test_matches_a_plain_model(size: int, steps: list[tuple[bytes, int]]) -> None:
    """Whatever arrives and whatever the handler leaves, the buffer presents exactly
    kept + new bytes, and reports full exactly when the kept bytes fill it."""
    buf = RecvBuffer(size)
    kept = b""
    for chunk, remaining in steps:
        room = buf.room()
        chunk = chunk[: len(room)]  # a transport writes at most the room it is given
        assert 1 <= len(room) <= size - len(kept)  # lazy compaction may hold some back
        presented = _put(buf, chunk)
        assert presented == kept + chunk
        left = min(remaining, len(presented))
        ok = buf.keep(remaining)
        kept = presented[len(presented) - left :] if left else b""
        assert ok == (len(kept) < size)
        if not ok:
            return
        assert buf.pending == len(kept)
