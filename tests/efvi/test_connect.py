"""Opening and closing connections: handshake, refusal, timeouts, accept filter, half and
simultaneous close, RST both ways, the TIME_WAIT pool."""

from __future__ import annotations

import pytest
from efvi_util import PORT, Recorder, make_net, options

from pollnet.backends.efvi import ConnectionClosedError, SimDriver, SimWire, TcpClient


def test_handshake() -> None:
    net = make_net()
    c, s = net.connect()
    assert net.ch.names() == ["established"]
    assert net.sh.names() == ["established"]
    assert c.is_established and not c.is_closed
    assert s.is_established and not s.is_closed
    assert c.peername == (net.server.local_ip, PORT)
    assert s.peername == (net.client.local_ip, c.info().local_port)
    assert c.info().state == "ESTABLISHED" and s.info().state == "ESTABLISHED"
    assert net.sh.asked == [s.peername]
    assert net.client.stats()["TcpActiveOpens"] == 1
    assert net.server.stats()["TcpPassiveOpens"] == 1


def test_data_both_ways() -> None:
    net = make_net()
    c, s = net.connect()
    assert c.send(b"hello") == 5
    assert s.send(b"world!") == 6
    assert net.drive.run_until(lambda: len(net.sh.data[s.conn_id]) == 5
                               and len(net.ch.data[c.conn_id]) == 6)
    assert net.sh.data[s.conn_id] == b"hello"
    assert net.ch.data[c.conn_id] == b"world!"


def test_refused_when_nobody_listens() -> None:
    net = make_net()
    c = net.client.connect(net.server.local_ip, PORT + 1)
    assert not c.is_established and not c.is_closed
    assert net.drive.run_until(lambda: net.ch.events != [], timeout_ms=5_000)
    assert net.ch.names() == ["refused"]
    assert c.is_closed and not c.is_established
    with pytest.raises(ConnectionClosedError, match="closed"):
        c.send(b"x")
    assert net.sh.events == []


def test_allow_new_connection_false_refuses() -> None:
    net = make_net()
    net.sh.accept = False
    net.client.connect(net.server.local_ip, PORT)
    # Asked only once the handshake completes (issue 8: spoofed SYNs never reach the
    # application), so the refused client sees its handshake end, then the server's RST.
    assert net.drive.run_until(lambda: len(net.ch.events) >= 2, timeout_ms=30_000)
    assert net.ch.names() == ["established", "reset"]
    assert net.sh.events == []
    assert net.sh.asked and net.sh.asked[0][0] == net.client.local_ip


def test_allow_new_connection_raising_propagates_from_poll() -> None:
    net = make_net()
    class Boom(Recorder):
        def allow_new_connection(self, ip: str, port: int) -> bool:
            raise RuntimeError("handler bug")

    boom = Boom()
    net.drive._members[0] = (net.server, boom)
    net.client.connect(net.server.local_ip, PORT)
    with pytest.raises(RuntimeError, match="handler bug"):
        net.drive.run_until(lambda: False, timeout_ms=1_000)


def test_syn_timeout() -> None:
    net = make_net()
    # A neighbour entry for a host that is not on the wire: SYNs go out, nothing answers.
    ghost = "10.0.0.99"
    net.client.add_neighbour(ghost, b"\x02\x00\x0a\x00\x00\x63")
    start = net.wire.now_ns
    c = net.client.connect(ghost, PORT)
    assert net.drive.run_until(lambda: net.ch.events != [], timeout_ms=120_000)
    assert net.ch.names() == ["timeout"]
    assert c.is_closed and not c.is_established
    # syn_retries = 3 with RTO doubling from the 1 s initial RTO (RFC 6298) or min_rto:
    # it cannot have given up before 3 backoffs of min_rto_ms.
    assert net.wire.now_ns - start >= (100 + 200 + 400) * 1_000_000
    assert net.client.stats()["TcpAttemptFails"] >= 1


def test_arp_failure_is_a_timeout() -> None:
    net = make_net()
    c = net.client.connect("10.0.0.77", PORT)  # on the subnet, no such host, no entry
    assert net.drive.run_until(lambda: net.ch.events != [], timeout_ms=30_000)
    assert net.ch.names() == ["timeout"]
    assert c.is_closed
    assert net.client.stats()["ArpRequestsOut"] >= 1


def test_half_close_then_close() -> None:
    net = make_net()
    c, s = net.connect()
    c.send(b"request")
    c.send_fin()
    assert net.drive.run_until(lambda: "fin" in net.sh.names())
    assert net.sh.data[s.conn_id] == b"request"
    # The server may still send after the client's FIN (half close).
    assert s.send(b"response after fin") == 18
    s.send_fin()
    assert net.drive.run_until(lambda: "closed" in net.ch.names()
                               and "closed" in net.sh.names())
    assert net.ch.data[c.conn_id] == b"response after fin"
    assert net.ch.names() == ["established", "fin", "closed"]
    assert net.sh.names() == ["established", "fin", "closed"]
    assert c.is_closed and s.is_closed
    with pytest.raises(ConnectionClosedError):
        s.send(b"late")


def test_fin_delivers_unconsumed_bytes() -> None:
    class Partial(Recorder):
        def on_data(self, conn, data):  # type: ignore[no-untyped-def]
            return len(data) % 4  # keep bytes that do not make a whole 4-byte record

    sh = Partial()
    n = make_net(sh=sh)
    c, s = n.connect()
    c.send(b"abcdefghij")  # 10 bytes: two records and 2 left over
    n.drive.run_for(20)
    c.send_fin()
    assert n.drive.run_until(lambda: "fin" in sh.names())
    assert sh.fin_data[s.conn_id] == b"ij"


def test_data_with_fin_goes_to_on_data_first() -> None:
    # efvitcp's order: bytes that come with the FIN go to on_data, on_fin gets the rest.
    class Partial(Recorder):
        def on_data(self, conn, data):  # type: ignore[no-untyped-def]
            self.events.append(("data", len(data)))
            return len(data) % 4

    sh = Partial()
    n = make_net(sh=sh)
    c, s = n.connect()
    c.send(b"abcdefghij")
    c.send_fin()  # the FIN rides on the data segment
    assert n.drive.run_until(lambda: "fin" in sh.names())
    assert sh.events[1:] == [("data", 10), ("fin", s.conn_id)]
    assert sh.fin_data[s.conn_id] == b"ij"


def test_fin_alone_does_not_repeat_on_data() -> None:
    class Partial(Recorder):
        def on_data(self, conn, data):  # type: ignore[no-untyped-def]
            self.events.append(("data", len(data)))
            return 3  # keep the last 3 bytes

    sh = Partial()
    n = make_net(sh=sh)
    c, s = n.connect()
    c.send(b"0123456789")
    n.drive.run_for(20)
    c.send_fin()  # a FIN with no new bytes: on_fin gets the 3 kept, on_data is not called
    assert n.drive.run_until(lambda: "fin" in sh.names())
    assert [e for e in sh.events if e[0] == "data"] == [("data", 10)]
    assert sh.fin_data[s.conn_id] == b"789"


def test_simultaneous_close() -> None:
    net = make_net()
    c, s = net.connect()
    c.send_fin()
    s.send_fin()  # both FINs cross on the wire (50 us each way)
    assert net.drive.run_until(lambda: "closed" in net.ch.names()
                               and "closed" in net.sh.names())
    assert net.ch.names()[-1] == "closed" and net.sh.names()[-1] == "closed"
    assert "fin" in net.ch.names() and "fin" in net.sh.names()


def test_client_rst() -> None:
    net = make_net()
    c, s = net.connect()
    c.close()
    assert c.is_closed
    c.close()  # closing twice does nothing
    assert net.drive.run_until(lambda: "reset" in net.sh.names())
    assert s.is_closed
    assert net.ch.names() == ["established"]  # no event for the side that closed


def test_server_rst() -> None:
    net = make_net()
    c, s = net.connect()
    before = net.client.stats()
    s.close()
    assert net.drive.run_until(lambda: "reset" in net.ch.names())
    assert c.is_closed and not c.is_established
    after = net.client.stats()
    # One RST arrived and ended one established connection (Linux's counters).
    assert after["TcpInRsts"] - before["TcpInRsts"] == 1
    assert after["TcpEstabResets"] - before["TcpEstabResets"] == 1


def test_time_wait_pool_full_still_closes_and_reconnects() -> None:
    opts = options(max_time_wait_conn_cnt=2)
    n = make_net(opts)
    client = TcpClient(opts, wire=n.wire, max_conns=8)
    ch = Recorder(wire=n.wire)
    n.drive.add(client, ch)
    for i in range(6):  # more closes than TIME_WAIT slots, on both sides
        c = client.connect(n.server.local_ip, PORT)
        before = len(n.sh.conns)
        assert n.drive.run_until(lambda c=c, k=before: c.is_established
                                 and len(n.sh.conns) > k)
        s = n.sh.conns[-1]
        c.send(f"round {i}".encode())
        c.send_fin()
        s.send_fin()
        assert n.drive.run_until(lambda c=c, s=s: c.is_closed and s.is_closed)
    assert ch.count("closed") == 6 and n.sh.count("closed") == 6
    assert ch.count("reset") == 0
    # Every close entered TIME_WAIT on both sides, the full pool recycling its oldest.
    assert client.stats()["TcpExtTW"] == 6 and n.server.stats()["TcpExtTW"] == 6
    assert b"".join(bytes(v) for v in n.sh.data.values()) == b"".join(
        f"round {i}".encode() for i in range(6))


def test_connection_table_full_raises() -> None:
    n = make_net()
    n.client.connect(n.server.local_ip, PORT)
    from pollnet.backends.efvi import ConnectionTableFull

    with pytest.raises(ConnectionTableFull, match="max_conns"):
        n.client.connect(n.server.local_ip, PORT)


def test_server_connection_limit() -> None:
    opts = options(max_conn_cnt=2)
    n = make_net(opts, client_opts=options())
    client = TcpClient(options(), wire=n.wire, max_conns=4)
    ch = Recorder(wire=n.wire)
    n.drive.add(client, ch)
    for _ in range(3):
        client.connect(n.server.local_ip, PORT)
    n.drive.run_for(3_000)
    assert n.sh.count("established") == 2
    assert ch.count("established") <= 3
    assert n.server.conn_count == 2


def test_user_timers() -> None:
    opts = options(user_timer_cnt=2)
    n = make_net(opts)
    c, s = n.connect()
    t0 = n.wire.now_ns
    c.set_user_timer(0, 50)
    c.set_user_timer(1, 20)
    s.set_user_timer(0, 10)
    s.set_user_timer(0, 0)  # deleted: never fires
    n.drive.run_for(100)
    fired = [(tid, (t - t0) // 1_000_000) for _, tid, t in n.ch.timers]
    assert [tid for tid, _ in fired] == [1, 0]
    assert 20 <= fired[0][1] <= 30 and 50 <= fired[1][1] <= 60
    assert n.sh.timers == []
    # Re-arming replaces the deadline.
    t1 = n.wire.now_ns
    c.set_user_timer(0, 40)
    c.set_user_timer(0, 10)
    n.drive.run_for(100)
    assert len(n.ch.timers) == 3
    assert 10 <= (n.ch.timers[2][2] - t1) // 1_000_000 <= 20


def test_user_timer_errors_name_the_fix() -> None:
    net = make_net()
    c, _ = net.connect()
    with pytest.raises(Exception, match="user_timer_cnt"):
        c.set_user_timer(1, 10)  # default user_timer_cnt = 1
    with pytest.raises(Exception, match="65000"):
        c.set_user_timer(0, 65001)


def test_slot_reuse_clears_user_data() -> None:
    n = make_net()
    c, s = n.connect()
    c.user_data = {"mine": 1}
    c.close()
    assert n.drive.run_until(lambda: s.is_closed)
    c2 = n.client.connect(n.server.local_ip, PORT)
    assert c2 is c and c2.user_data is None  # same slot, like an fd


def test_footprint_and_memory() -> None:
    from pollnet.backends.efvi import footprint

    n = make_net()
    assert n.client.memory_bytes > 0
    assert n.server.memory_bytes > n.client.memory_bytes  # 16 slots vs 1
    assert footprint(options(), max_conn_cnt=1) == n.client.memory_bytes


def test_wire_faults_are_reproducible_from_the_seed() -> None:
    def run(seed: int) -> tuple[dict[str, int], int]:
        n = make_net(loss=0.2, seed=seed, static_arp=True)
        c, s = n.connect()
        n.ch.send(c, bytes(100_000))
        n.drive.run_until(lambda: len(n.sh.data[s.conn_id]) == 100_000, timeout_ms=600_000)
        return n.wire.stats(), n.wire.now_ns

    assert run(5) == run(5)


def test_sim_driver_idle_returns() -> None:
    wire = SimWire()
    drive = SimDriver(wire)
    assert drive.run_until(lambda: False, timeout_ms=1_000) is False


def test_close_and_reconnect_inside_a_callback() -> None:
    n = make_net(options(max_conn_cnt=4))
    client = TcpClient(options(), wire=n.wire, max_conns=2)

    class Reconnect(Recorder):
        def __init__(self) -> None:
            super().__init__()
            self.new: list[int] = []

        def on_data(self, conn, data):  # type: ignore[no-untyped-def]
            conn.close()
            self.new.append(client.connect(n.server.local_ip, PORT).conn_id)
            return 0

    ch = Reconnect()
    n.drive.add(client, ch)
    c = client.connect(n.server.local_ip, PORT)
    assert n.drive.run_until(lambda: c.is_established and len(n.sh.conns) == 1)
    old = c.conn_id
    n.sh.conns[0].send(b"bye")
    assert n.drive.run_until(lambda: ch.count("established") == 2)
    # The freed slot is not handed out again during the batch that freed it.
    assert ch.new and ch.new[0] != old
    assert n.drive.run_until(lambda: "reset" in n.sh.names())
