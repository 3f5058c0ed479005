"""Sending and receiving through the Python API: `more`, sendv, sendable accounting,
on_more_sendable, a zero window that reopens, on_data's remaining-bytes contract."""

from __future__ import annotations

import struct

import pytest
from efvi_util import Recorder, make_net, options, pattern

from pollnet.backends.efvi import Connection, EfviError
from pollnet.errors import HandlerError

MSS = 960  # send_buf_1k = True caps the MSS at 960


def test_more_holds_back_a_partial_segment() -> None:
    n = make_net()
    c, s = n.connect()
    n.drive.run_for(50)
    sent_before = n.client.stats()["TcpOutSegs"]
    assert c.send(b"a" * 100, more=True) == 100
    n.drive.run_for(50)
    assert n.sh.data[s.conn_id] == b""  # held back
    assert n.client.stats()["TcpOutSegs"] == sent_before
    assert c.send(b"b" * 20) == 20  # no more: everything goes, as one segment
    assert n.drive.run_until(lambda: len(n.sh.data[s.conn_id]) == 120)
    assert n.sh.data[s.conn_id] == b"a" * 100 + b"b" * 20
    assert n.client.stats()["TcpOutSegs"] == sent_before + 1


def test_more_sends_full_segments_at_once() -> None:
    n = make_net()
    c, s = n.connect()
    assert c.send(b"x" * (3 * MSS + 10), more=True) == 3 * MSS + 10
    n.drive.run_for(50)
    assert len(n.sh.data[s.conn_id]) == 3 * MSS  # the trailing 10 bytes wait
    c.send(b"")
    assert n.drive.run_until(lambda: len(n.sh.data[s.conn_id]) == 3 * MSS + 10)


def test_sendv_concatenates_buffers() -> None:
    n = make_net()
    c, s = n.connect()
    parts = [b"head:", bytearray(b"middle-"), memoryview(b"--tail--")[2:6], b""]
    assert c.sendv(parts) == 5 + 7 + 4
    many = [bytes([i]) * 3 for i in range(100)]  # more buffers than the preallocated iovec
    assert c.sendv(many) == 300
    assert n.drive.run_until(lambda: len(n.sh.data[s.conn_id]) == 316)
    assert n.sh.data[s.conn_id] == b"head:middle-tail" + b"".join(many)


def test_sendv_more() -> None:
    n = make_net()
    c, s = n.connect()
    c.sendv([b"a" * 10, b"b" * 10], more=True)
    n.drive.run_for(50)
    assert n.sh.data[s.conn_id] == b""
    c.sendv([b"c"])
    assert n.drive.run_until(lambda: len(n.sh.data[s.conn_id]) == 21)


def test_sendable_accounting() -> None:
    opts = options(conn_send_buf_cnt=8)
    n = make_net(opts)
    c, s = n.connect()
    total = c.sendable()
    assert total > 0
    assert c.immediately_sendable() <= total
    assert c.send(b"x" * 1000) == 1000
    assert c.sendable() <= total - 1000
    rest = c.sendable()
    # A send larger than sendable() is cut to exactly sendable().
    assert c.send(pattern(rest + 5000)) == rest
    assert c.sendable() == 0
    assert c.send(b"more") == 0
    assert n.drive.run_until(lambda: c.sendable() == total)
    assert len(n.sh.data[s.conn_id]) == 1000 + rest


def test_on_more_sendable_refills() -> None:
    opts = options(conn_send_buf_cnt=4)
    n = make_net(opts)
    c, s = n.connect()
    payload = pattern(200_000, seed=3)
    pump = n.ch.send(c, payload)
    assert not pump.done  # 4 buffers hold far less
    assert n.drive.run_until(lambda: len(n.sh.data[s.conn_id]) == len(payload),
                             timeout_ms=60_000)
    assert n.sh.data[s.conn_id] == payload
    assert n.ch.count("more_sendable") > 1


def test_zero_window_then_reopen() -> None:
    # The receiver keeps every byte unconsumed until its window is 0; the sender's
    # zero-window probes bring the held bytes back to on_data, which now consumes them.
    opts = options(conn_recv_buf_size=8192, conn_send_buf_cnt=64)
    sh = Recorder(consume=False)
    n = make_net(opts, sh=sh)
    c, s = n.connect()
    payload = pattern(50_000, seed=9)
    n.ch.send(c, payload)
    n.drive.run_for(500)
    info = c.info()
    assert info.snd_wnd == 0  # the receiver keeps everything unconsumed: window closed
    assert c.immediately_sendable() == 0
    assert c.sendable() > 0 or n.ch.pumps[c.conn_id].off < len(payload)
    assert s.info().rcv_wnd == 0
    # Consume again: the window reopens (window update or probe) and the rest flows.
    sh.consume = True
    s.user_data = "reopened"
    assert n.drive.run_until(lambda: len(sh.data[s.conn_id]) == len(payload),
                             timeout_ms=120_000)
    assert sh.data[s.conn_id] == payload


def test_on_data_remaining_comes_back_first() -> None:
    class Lines(Recorder):
        def __init__(self) -> None:
            super().__init__()
            self.lines: list[bytes] = []
            self.sizes: list[int] = []

        def on_data(self, conn: Connection, data: memoryview) -> int:
            self.sizes.append(len(data))
            raw = bytes(data)
            *whole, tail = raw.split(b"\n")
            self.lines += whole
            return len(tail)

    sh = Lines()
    n = make_net(sh=sh)
    c, _ = n.connect()
    c.send(b"one\ntw")
    n.drive.run_for(20)
    c.send(b"o\nthree")
    n.drive.run_for(20)
    c.send(b"\n")
    n.drive.run_for(20)
    assert sh.lines == [b"one", b"two", b"three"]
    assert sh.sizes == [6, 2 + 7, 5 + 1]


def test_on_data_view_is_released_after_the_callback() -> None:
    kept: list[memoryview] = []

    class Keeper(Recorder):
        def on_data(self, conn: Connection, data: memoryview) -> int:
            kept.append(data)
            return 0

    n = make_net(sh=Keeper())
    c, _ = n.connect()
    c.send(b"abc")
    assert n.drive.run_until(lambda: bool(kept))
    with pytest.raises(ValueError):
        bytes(kept[0])  # the core's buffer is not valid after on_data returns


def test_on_data_bad_return_names_the_contract() -> None:
    class Bad(Recorder):
        def on_data(self, conn: Connection, data: memoryview) -> int:
            return len(data) + 1

    n = make_net(sh=Bad())
    c, _ = n.connect()
    c.send(b"abc")
    with pytest.raises(HandlerError, match=r"on_data .* returned 4.*0\.\.3"):
        n.drive.run_until(lambda: False, timeout_ms=100)


def test_on_data_exception_propagates_and_the_same_bytes_come_again() -> None:
    # A batch of one DATA event (poll()'s inline path) behaves as the dispatch loop: the
    # exception reaches the poller, the event stays pending and its bytes are presented
    # again at the next poll (nothing is lost), and the connection goes on.
    class Raiser(Recorder):
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[bytes] = []

        def on_data(self, conn: Connection, data: memoryview) -> int:
            self.calls.append(bytes(data))
            if len(self.calls) == 1:
                raise RuntimeError("first data")
            return 0

    sh = Raiser()
    n = make_net(sh=sh)
    c, _ = n.connect()
    c.send(b"first")
    with pytest.raises(RuntimeError, match="first data"):
        n.drive.run_for(20)
    n.drive.run_for(20)
    assert sh.calls == [b"first", b"first"]
    c.send(b"second")
    n.drive.run_for(20)
    assert sh.calls == [b"first", b"first", b"second"]


def test_handler_exception_keeps_the_rest_of_the_batch() -> None:
    class Flaky(Recorder):
        def __init__(self) -> None:
            super().__init__()
            self.raised = False

        def on_connection_established(self, conn: Connection) -> None:
            super().on_connection_established(conn)
            if not self.raised:
                self.raised = True
                raise RuntimeError("once")

    sh = Flaky()
    n = make_net(options(max_conn_cnt=4), sh=sh)
    from pollnet.backends.efvi import TcpClient

    clients = [TcpClient(options(), wire=n.wire) for _ in range(3)]
    handlers = [Recorder() for _ in clients]
    for cl, h in zip(clients, handlers, strict=True):
        n.drive.add(cl, h)
        cl.connect(n.server.local_ip, 7000)
    with pytest.raises(RuntimeError, match="once"):
        n.drive.run_until(lambda: False, timeout_ms=1_000)
    assert n.drive.run_until(lambda: sh.count("established") == 3)


def test_send_on_closed_connection_is_a_clear_error() -> None:
    from pollnet.backends.efvi import ConnectionClosedError

    n = make_net()
    _c, s = n.connect()
    s.close()
    for call in (lambda: s.send(b"x"), lambda: s.sendv([b"x"]), s.sendable,
                 s.immediately_sendable, s.send_fin, lambda: s.set_user_timer(0, 1), s.info):
        with pytest.raises(ConnectionClosedError, match=r"connection \d+ to .*closed"):
            call()


def test_handler_subset_and_plain_objects() -> None:
    class OnlyData:
        def __init__(self) -> None:
            self.got = bytearray()

        def on_data(self, conn: Connection, data: memoryview) -> int:
            self.got += data
            return 0

    sh = OnlyData()
    n = make_net()
    n.drive._members[0] = (n.server, sh)
    c = n.client.connect(n.server.local_ip, 7000)
    assert n.drive.run_until(lambda: c.is_established)
    c.send(b"plain handler")
    assert n.drive.run_until(lambda: bytes(sh.got) == b"plain handler")


def test_efvitcp_camel_case_names() -> None:
    class Camel:
        def __init__(self) -> None:
            self.got = bytearray()
            self.established = 0

        def onConnectionEstablished(self, conn: Connection) -> None:
            self.established += 1

        def onData(self, conn: Connection, data: memoryview) -> int:
            self.got += data
            return 0

    sh = Camel()
    n = make_net()
    n.drive._members[0] = (n.server, sh)
    c = n.client.connect(n.server.local_ip, 7000)
    assert n.drive.run_until(lambda: c.is_established and sh.established == 1)
    c.send(b"camel")
    assert n.drive.run_until(lambda: bytes(sh.got) == b"camel")


def test_on_data_keeping_an_export_is_a_clear_error() -> None:
    kept: list[object] = []

    class Exporter(Recorder):
        def on_data(self, conn: Connection, data: memoryview) -> int:
            kept.append(struct.iter_unpack("B", data))  # holds a buffer export of the view
            return 0

    n = make_net(sh=Exporter())
    c, _ = n.connect()
    c.send(b"abc")
    with pytest.raises(EfviError, match="valid only during the call"):
        n.drive.run_until(lambda: False, timeout_ms=100)
