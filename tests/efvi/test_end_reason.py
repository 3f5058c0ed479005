"""Connection.end_reason: why a connection ended (the core's pn_event.reason, named by
pn_reason_str), set before the closing handler is called -- on the sim wire."""

from __future__ import annotations

from efvi_util import PORT, Recorder, make_net, options

from pollnet.backends.efvi import Connection, SimDriver
from pollnet.backends.efvi.core.binding import c_string, constants, lib


def reason_text(name: str) -> str:
    return c_string(lib.pn_reason_str(constants("PN_REASON_")[f"PN_REASON_{name}"]))


class Reasons(Recorder):
    """A Recorder that also notes conn.end_reason as each closing handler sees it."""

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.reasons: list[tuple[str, str]] = []

    def on_connection_timeout(self, conn: Connection) -> None:
        self.reasons.append(("timeout", conn.end_reason))
        super().on_connection_timeout(conn)

    def on_connection_reset(self, conn: Connection) -> None:
        self.reasons.append(("reset", conn.end_reason))
        super().on_connection_reset(conn)

    def on_connection_refused(self, conn: Connection) -> None:
        self.reasons.append(("refused", conn.end_reason))
        super().on_connection_refused(conn)

    def on_connection_closed(self, conn: Connection) -> None:
        self.reasons.append(("closed", conn.end_reason))
        super().on_connection_closed(conn)


def test_the_reason_texts_are_the_cores() -> None:
    assert reason_text("ZERO_WINDOW") == "peer's window stayed zero (zero_window_timeout_ms)"
    assert reason_text("RESET") == "reset by the peer"


def test_zero_window_forever_times_out_and_the_peer_sees_the_reset() -> None:
    # The server never reads (its window closes and stays closed, every probe answered);
    # the client's zero_window_timeout_ms ends it with a RST.
    sh, ch = Reasons(consume=False), Reasons()
    n = make_net(options(conn_recv_buf_size=4096),
                 client_opts=options(zero_window_timeout_ms=3000), sh=sh, ch=ch)
    c, _ = n.connect()
    assert c.end_reason == ""
    ch.send(c, bytes(200_000))
    assert n.drive.run_until(lambda: ch.reasons and sh.reasons, timeout_ms=120_000)
    assert ch.reasons == [("timeout", reason_text("ZERO_WINDOW"))]
    assert sh.reasons == [("reset", reason_text("RESET"))]
    assert c.is_closed and c.end_reason == reason_text("ZERO_WINDOW")
    assert n.client.stats()["PnZeroWindowAborts"] == 1


def test_a_peer_that_never_acks_exhausts_the_retries() -> None:
    ch = Reasons()
    n = make_net(client_opts=options(tcp_retries=3, max_rto_ms=1000), ch=ch)
    c, _ = n.connect()
    n.server.close()  # gone without a RST: nothing will ever ACK
    drive = SimDriver(n.wire, (n.client, ch))
    assert c.send(b"hello") == 5
    assert drive.run_until(lambda: ch.reasons, timeout_ms=120_000)
    assert ch.reasons == [("timeout", reason_text("RETRIES"))]


def test_unanswered_syns_and_arp() -> None:
    ch = Reasons()
    n = make_net(ch=ch)
    n.client.add_neighbour("10.0.0.99", b"\x02\x00\x0a\x00\x00\x63")
    n.client.connect("10.0.0.99", PORT)
    assert n.drive.run_until(lambda: ch.reasons, timeout_ms=120_000)
    assert ch.reasons == [("timeout", reason_text("SYN_RETRIES"))]
    n.drive.step()  # the freed slot is free again from the next poll
    c = n.client.connect("10.0.0.77", PORT)  # nobody has it: ARP fails, no core reason
    assert n.drive.run_until(lambda: len(ch.reasons) == 2, timeout_ms=120_000)
    assert ch.reasons[1] == ("timeout", "ARP for the next hop unanswered")
    assert c.end_reason == "ARP for the next hop unanswered"


def test_reset_refused_closed_and_local_close() -> None:
    sh, ch = Reasons(), Reasons()
    n = make_net(sh=sh, ch=ch)
    _, s = n.connect()
    s.close()
    assert s.end_reason == "closed by the application (close())"
    assert n.drive.run_until(lambda: ch.reasons)
    assert ch.reasons == [("reset", reason_text("RESET"))]

    n.drive.step()
    n.client.connect(n.server.local_ip, PORT + 1)  # nobody listens there
    assert n.drive.run_until(lambda: len(ch.reasons) == 2)
    assert ch.reasons[1] == ("refused", reason_text("RESET"))



def test_fin_wait_2_without_the_peers_fin_times_out() -> None:
    # The client's FIN is acknowledged; the server never sends its own: fin_timeout_ms
    # (Linux's tcp_fin_timeout) ends the client's FIN_WAIT_2 with a RST.
    sh, ch = Reasons(), Reasons()
    n = make_net(client_opts=options(fin_timeout_ms=2000), sh=sh, ch=ch)
    assert options().fin_timeout_ms == 60_000
    c, _ = n.connect()
    c.send_fin()
    assert n.drive.run_until(lambda: "fin" in sh.names())
    assert n.drive.run_until(lambda: ch.reasons and sh.reasons, timeout_ms=120_000)
    assert ch.reasons == [("timeout", reason_text("FIN_WAIT_2"))]
    assert sh.reasons == [("reset", reason_text("RESET"))]
    assert n.client.stats()["PnFinWait2Timeouts"] == 1


def test_keepalive_ends_a_connection_whose_peer_vanished() -> None:
    ch = Reasons()
    assert options().keepalive_idle_ms == 0  # off by default, as Linux
    n = make_net(client_opts=options(keepalive_idle_ms=2000, keepalive_intvl_ms=1000,
                                     keepalive_cnt=3), ch=ch)
    n.connect()
    n.server.close()  # gone without a RST: nothing answers the probes
    drive = SimDriver(n.wire, (n.client, ch))
    assert drive.run_until(lambda: ch.reasons, timeout_ms=120_000)
    assert ch.reasons == [("timeout", reason_text("KEEPALIVE"))]
    assert reason_text("KEEPALIVE").startswith("keepalive probes unanswered")
    assert n.client.stats()["TcpExtTCPKeepAlive"] == 3


def test_a_clean_close_and_the_next_connection() -> None:
    sh, ch = Reasons(), Reasons()
    n = make_net(sh=sh, ch=ch)
    c, s = n.connect()
    c.send_fin()
    assert n.drive.run_until(lambda: "fin" in sh.names())
    s.send_fin()
    assert n.drive.run_until(lambda: ch.reasons and sh.reasons, timeout_ms=120_000)
    assert [r[0] for r in ch.reasons + sh.reasons] == ["closed", "closed"]
    assert c.end_reason == "closed: both FINs sent and acknowledged"
    n.drive.run_for(1)
    c2 = n.client.connect(n.server.local_ip, PORT)
    assert c2 is c and c2.end_reason == ""  # the slot's next connection has no reason yet


def test_closing_the_stack_says_so() -> None:
    n = make_net()
    c, _ = n.connect()
    n.client.close()
    assert c.is_closed and c.end_reason == "the stack was closed"
