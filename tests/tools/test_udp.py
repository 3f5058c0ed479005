"""UdpReceiver / UdpSender on loopback (no privileges): busy-polled, never blocking."""

from __future__ import annotations

import time

import pytest

from pollnet.tools.udp import UdpReceiver, UdpSender


def test_unicast_round_trip_on_loopback() -> None:
    with UdpReceiver(0, bind_ip="127.0.0.1") as rx, UdpSender("127.0.0.1", rx.port) as tx:
        got: list[tuple[bytes, tuple[str, int]]] = []
        assert rx.recv(lambda d, s: got.append((bytes(d), s))) == 0  # nothing yet, no block
        for i in range(100):
            assert tx.write(i.to_bytes(4, "big") * 10)
        deadline = time.monotonic() + 5
        while len(got) < 100 and time.monotonic() < deadline:
            rx.recv(lambda d, s: got.append((bytes(d), s)))
        assert [int.from_bytes(d[:4], "big") for d, _ in got] == list(range(100))
        assert got[0][1][0] == "127.0.0.1" and rx.datagrams == 100 and rx.bytes == 4000
        assert tx.write(b"x") and _read_one(rx) == b"x"


def _read_one(rx: UdpReceiver) -> bytes:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        r = rx.read()
        if r is not None:
            return r[0]
    raise AssertionError("no datagram")


def test_a_group_that_is_not_multicast_is_refused() -> None:
    with pytest.raises(ValueError, match="not an IPv4 multicast"):
        UdpReceiver(0, group="10.1.2.3")
