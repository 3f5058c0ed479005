"""Data: the remaining-bytes contract, buffer-full close, and the three writes."""

from __future__ import annotations

import itertools
import socket
import struct
import threading

import pollnet
from behaviour.efvi_params import assert_connect_fails, kernel_loopback_unreachable
from pollnet.api import PollConnection
from pollnet.config import AnyConfig
from pollnet.testing import PairMaker, RecordingHandler, poll_for, poll_until, with_sections


def _frames_parser(out: list[bytes]) -> RecordingHandler:
    """A handler that parses 2-byte length-prefixed frames and leaves partial ones."""

    def remaining(conn: PollConnection, data: memoryview) -> int:
        pos = 0
        while len(data) - pos >= 2:
            (size,) = struct.unpack_from("!H", data, pos)
            if len(data) - pos - 2 < size:
                break
            out.append(bytes(data[pos + 2 : pos + 2 + size]))
            pos += 2 + size
        return len(data) - pos

    return RecordingHandler(remaining=remaining)


def test_split_frames_are_reassembled(make_pair: PairMaker) -> None:
    frames: list[bytes] = []
    pair = make_pair(server_handler=_frames_parser(frames))
    sent = [bytes([i]) * (i * 7 % 300) for i in range(1, 40)]
    stream = b"".join(struct.pack("!H", len(f)) + f for f in sent)
    # Cut the stream at awkward places: inside headers and inside bodies.
    cuts = [0, 1, 3, 50, 51, 52, 400, 401, 1000, 2500, len(stream)]
    for a, b in itertools.pairwise(cuts):
        assert pair.client_conn.write(stream[a:b])
        poll_for(20, pair)
    assert poll_until(lambda: len(frames) == len(sent), pair)
    assert frames == sent


def test_one_byte_writes_arrive_in_order(make_pair: PairMaker) -> None:
    pair = make_pair()
    payload = bytes(range(200))
    for i in range(len(payload)):
        assert pair.client_conn.write(payload[i : i + 1])
        pair.poll()
    sh = pair.server_handler
    assert poll_until(lambda: bytes(sh.received) == payload, pair)


def test_consuming_one_byte_per_call_presents_the_rest_again(make_pair: PairMaker) -> None:
    # Leave everything but the first byte each time.
    handler = RecordingHandler(remaining=lambda conn, data: len(data) - 1)
    pair = make_pair(server_handler=handler)
    pair.client_conn.write(b"abcdef")
    assert poll_until(lambda: len(handler.presented) == 1, pair)
    assert handler.presented[0] == b"abcdef"
    for i, chunk in enumerate([b"1", b"2", b"3"]):
        pair.client_conn.write(chunk)
        assert poll_until(lambda n=i + 2: len(handler.presented) == n, pair)
    # Each call shows the unconsumed tail first, then what just arrived.
    assert handler.presented == [b"abcdef", b"bcdef1", b"cdef12", b"def123"]
    assert bytes(handler.received) == b"abcd"


def test_remaining_zero_consumes_everything(make_pair: PairMaker) -> None:
    pair = make_pair()
    h = pair.server_handler
    pair.client_conn.write(b"first")
    assert poll_until(lambda: len(h.presented) == 1, pair)
    pair.client_conn.write(b"second")
    assert poll_until(lambda: len(h.presented) == 2, pair)
    assert h.presented == [b"first", b"second"]


def test_remaining_all_keeps_everything(make_pair: PairMaker) -> None:
    handler = RecordingHandler(remaining=lambda conn, data: len(data))
    pair = make_pair(server_handler=handler)
    pair.client_conn.write(b"first")
    assert poll_until(lambda: len(handler.presented) == 1, pair)
    pair.client_conn.write(b"second")
    assert poll_until(lambda: len(handler.presented) == 2, pair)
    assert handler.presented == [b"first", b"firstsecond"]
    assert handler.received == b""


def test_kept_bytes_survive_compaction(make_pair: PairMaker) -> None:
    # Keep 10 bytes of every call; many calls push the kept bytes through the buffer.
    handler = RecordingHandler(remaining=lambda conn, data: min(10, len(data)))
    pair = make_pair(server={"recv_buf_size": 256}, server_handler=handler)
    payload = bytes(i % 251 for i in range(3000))
    for i in range(0, len(payload), 100):
        pair.client_conn.write(payload[i : i + 100])
        assert poll_until(lambda n=i + 100: len(handler.received) + 10 >= n, pair)
    assert bytes(handler.received) == payload[:-10]
    assert handler.presented[-1].endswith(payload[-10:])
    assert pair.server_conn.is_connected


def test_full_buffer_of_unconsumed_bytes_closes_with_reason(make_pair: PairMaker) -> None:
    handler = RecordingHandler(remaining=lambda conn, data: len(data))
    pair = make_pair(server={"recv_buf_size": 64}, server_handler=handler)
    conn = pair.server_conn
    pair.client_conn.write(b"x" * 100)
    assert poll_until(lambda: len(handler.disconnected) == 1, pair)
    assert handler.disconnected == [conn]
    assert "recv buffer full" in conn.last_error
    assert max(len(p) for p in handler.presented) == 64
    ch = pair.client_handler
    assert poll_until(lambda: len(ch.disconnected) == 1, pair)


def test_more_flag_still_delivers(make_pair: PairMaker) -> None:
    pair = make_pair()
    conn = pair.client_conn
    assert conn.write(b"head-", more=True)
    assert conn.write_some(b"middle-", more=True) == 7
    assert conn.write_nonblock(b"tail", more=False)
    h = pair.server_handler
    assert poll_until(lambda: bytes(h.received) == b"head-middle-tail", pair)


def _fill(conn: PollConnection) -> int:
    """write_some until the socket takes nothing more (the peer is not reading)."""
    chunk = b"z" * 65536
    total = 0
    for _ in range(10_000):
        n = conn.write_some(chunk)
        assert n >= 0
        if n == 0:
            return total
        total += n
    raise AssertionError("the send path never filled up")


def test_write_some_returns_zero_when_full(make_pair: PairMaker) -> None:
    pair = make_pair()
    conn = pair.client_conn
    sent = _fill(conn)
    assert sent > 0
    assert conn.write_some(b"more") == 0
    assert conn.is_connected  # a full socket is not an error
    # Once the server reads, everything that was accepted arrives.
    h = pair.server_handler
    assert poll_until(lambda: len(h.received) == sent, pair)


def test_write_nonblock_closes_when_it_cannot_send_all(make_pair: PairMaker) -> None:
    pair = make_pair()
    conn = pair.client_conn
    _fill(conn)
    assert conn.write_nonblock(b"y" * 1000) is False
    assert not conn.is_connected
    assert "send buffer full" in conn.last_error
    ch = pair.client_handler
    assert poll_until(lambda: ch.disconnected == [conn], pair)


def test_one_write_far_larger_than_the_buffers_arrives_whole(
    backend_config: AnyConfig,
) -> None:
    # The peer is a kernel socket drained by a thread, so one write() far larger than the
    # buffers is accepted whole: the socket backend retries partial sends until the reader
    # has made room, tcpdirect queues the rest for the following polls (docs/backends.md).
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    cfg = with_sections(backend_config, client={"server_ip": "127.0.0.1",
                                                "server_port": listener.getsockname()[1]})
    unreachable = kernel_loopback_unreachable(cfg)
    if unreachable is not None:  # efvi: the kernel's socket is out of reach (documented)
        listener.close()
        assert_connect_fails(cfg, unreachable)
        return
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
        assert poll_until(lambda: len(got) >= len(big) or not reader.is_alive(),
                          (client, handler), timeout=30)
        reader.join(timeout=30)
        assert bytes(got) == big
    finally:
        client.close()
        listener.close()
