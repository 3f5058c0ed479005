"""TcpStream on crafted frames: the receiver's view of each direction, whatever order,
duplication or overlap the capture shows."""

from __future__ import annotations

import random

from pollnet.tools.packets import ACK, FIN, RST, SYN
from pollnet.tools.tcpstream import TcpStreams

from .frames_util import tcp_frame, udp_frame

C, S = ("10.0.0.1", 40000), ("10.0.0.2", 80)


def handshake(isn_c: int = 1000, isn_s: int = 5000) -> list[bytes]:
    return [tcp_frame(C, S, isn_c, flags=SYN), tcp_frame(S, C, isn_s, flags=SYN | ACK),
            tcp_frame(C, S, isn_c + 1)]


def segments(src: tuple[str, int], dst: tuple[str, int], isn: int, data: bytes,
             mss: int) -> list[bytes]:
    return [tcp_frame(src, dst, isn + 1 + i, data[i : i + mss]) for i in range(0, len(data), mss)]


def test_in_order_both_directions_and_the_close() -> None:
    up, down = b"request " * 100, b"response" * 300
    frames = handshake() + segments(C, S, 1000, up, 100) + segments(S, C, 5000, down, 536)
    frames += [tcp_frame(C, S, 1001 + len(up), flags=FIN | ACK),
               tcp_frame(S, C, 5001 + len(down), flags=FIN | ACK)]
    (conn,) = TcpStreams.from_frames(frames).connections
    assert (conn.client, conn.server) == (C, S) and conn.established
    assert bytes(conn.client_to_server.data) == up and bytes(conn.server_to_client.data) == down
    assert conn.closed and conn.client_to_server.complete and conn.server_to_client.complete


def test_out_of_order_retransmitted_and_overlapping_segments() -> None:
    data = bytes(random.Random(1).randbytes(20000))
    segs = segments(C, S, 1000, data, 700)
    rng = random.Random(2)
    shuffled = segs[:]
    rng.shuffle(shuffled)
    dups = rng.sample(segs, 10)
    # an overlapping retransmission: bytes 350..1750 in one segment
    overlap = [tcp_frame(C, S, 1001 + 350, data[350:1750])]
    frames = handshake() + shuffled + dups + overlap
    (conn,) = TcpStreams.from_frames(frames).connections
    d = conn.client_to_server
    assert bytes(d.data) == data and d.holes == []
    assert d.out_of_order_segments > 0 and d.retransmitted_bytes >= 10 * 700 and d.conflicts == 0


def test_first_copy_wins_and_differing_retransmissions_are_counted() -> None:
    frames = [*handshake(), tcp_frame(C, S, 1001, b"abcdef"), tcp_frame(C, S, 1003, b"XYZWgh")]
    (conn,) = TcpStreams.from_frames(frames).connections
    assert bytes(conn.client_to_server.data) == b"abcdefgh"
    assert conn.client_to_server.conflicts == 1 and conn.client_to_server.retransmitted_bytes == 4


def test_a_gap_is_reported_as_a_hole() -> None:
    frames = [*handshake(), tcp_frame(C, S, 1001, b"a" * 10), tcp_frame(C, S, 1021, b"c" * 10),
              tcp_frame(C, S, 1031, flags=FIN | ACK)]
    (conn,) = TcpStreams.from_frames(frames).connections
    d = conn.client_to_server
    assert bytes(d.data) == b"a" * 10 and d.holes == [(10, 20)] and not d.complete
    # the hole fills when the missing segment turns up late:
    late = TcpStreams.from_frames([*frames, tcp_frame(C, S, 1011, b"b" * 10)])
    d2 = late.connections[0].client_to_server
    assert bytes(d2.data) == b"a" * 10 + b"b" * 10 + b"c" * 10 and d2.complete


def test_sequence_numbers_wrap_around() -> None:
    isn = 0xFFFFFFFF - 1500
    data = bytes(range(256)) * 20
    frames = handshake(isn_c=isn) + segments(C, S, isn, data, 1000)[::-1]
    (conn,) = TcpStreams.from_frames(frames).connections
    assert bytes(conn.client_to_server.data) == data


def test_bytes_after_fin_are_ignored_and_rst_ends_the_connection() -> None:
    frames = [*handshake(), tcp_frame(C, S, 1001, b"hello", flags=FIN | ACK),
              tcp_frame(C, S, 1006, b"late"), tcp_frame(S, C, 5001, flags=RST)]
    (conn,) = TcpStreams.from_frames(frames).connections
    assert bytes(conn.client_to_server.data) == b"hello" and conn.reset and conn.closed


def test_capture_without_the_syn_starts_at_the_first_segment() -> None:
    frames = [tcp_frame(C, S, 77777, b"middle"), tcp_frame(C, S, 77783, b"end")]
    (conn,) = TcpStreams.from_frames(frames).connections
    assert bytes(conn.client_to_server.data) == b"middleend" and not conn.syn_seen


def test_a_reused_four_tuple_is_a_new_connection() -> None:
    first = [*handshake(1000), tcp_frame(C, S, 1001, b"one"), tcp_frame(S, C, 5001, flags=RST)]
    second = [*handshake(90000), tcp_frame(C, S, 90001, b"two")]
    streams = TcpStreams.from_frames(first + second + [udp_frame(C, S, b"dns?")])
    assert [bytes(c.client_to_server.data) for c in streams.connections] == [b"one", b"two"]
    assert streams.non_tcp == 1 and len(streams.find(80)) == 2
