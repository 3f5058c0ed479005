"""The efvitcp knobs that change the wire: window scale, timestamps, congestion control,
1K/2K send buffers, delayed ACK."""

from __future__ import annotations

import hashlib

import pytest
from efvi_util import make_net, options, pattern


def transfer(n_bytes: int, **kw: object) -> tuple[object, object, object]:
    wire_kw = {k: kw.pop(k) for k in list(kw) if k in ("loss", "seed", "reorder", "delay_us",
                                                        "static_arp", "bandwidth_mbps")}
    net = make_net(options(**kw), **wire_kw)  # type: ignore[arg-type]
    c, s = net.connect()
    payload = pattern(n_bytes, seed=n_bytes)
    net.ch.send(c, payload)
    assert net.drive.run_until(lambda: len(net.sh.data[s.conn_id]) >= n_bytes,
                               timeout_ms=600_000), c.info()
    got = bytes(net.sh.data[s.conn_id])
    assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
    return net, c, s


@pytest.mark.parametrize("window_scale", [False, True])
@pytest.mark.parametrize("timestamps", [False, True])
def test_window_scale_and_timestamps(window_scale: bool, timestamps: bool) -> None:
    net, c, _s = transfer(400_000, window_scale=window_scale, timestamps=timestamps,
                         conn_recv_buf_size=200_000, conn_send_buf_cnt=256)
    wnd = c.info().snd_wnd  # type: ignore[attr-defined]
    if window_scale:
        assert wnd > 65535  # the 200 KB receive buffer is advertised whole
    else:
        assert wnd <= 65535
    stats = net.server.stats()  # type: ignore[attr-defined]
    assert stats["TcpExtPAWSEstabRejected"] == 0


def test_window_scale_only_one_side_falls_back() -> None:
    from efvi_util import PORT, Recorder

    from pollnet.backends.efvi import SimDriver, SimWire, TcpClient, TcpServer

    wire = SimWire(delay_us=50)
    server = TcpServer(options(window_scale=True, timestamps=True,
                               conn_recv_buf_size=200_000), port=PORT, wire=wire)
    client = TcpClient(options(), wire=wire)
    sh, ch = Recorder(), Recorder()
    drive = SimDriver(wire, (server, sh), (client, ch))
    c = client.connect(server.local_ip, PORT)
    assert drive.run_until(lambda: c.is_established and bool(sh.conns))
    assert c.info().snd_wnd <= 65535
    c.send(b"z" * 5000)
    assert drive.run_until(lambda: len(sh.data[sh.conns[0].conn_id]) == 5000)


def _after_one_loss(cc: str) -> tuple[int, int, int]:
    """(cwnd, ssthresh, retransmitted segments) after a transfer that lost one segment,
    the 60th the client sent after the handshake: every algorithm meets that loss with
    the same window behind it, and none other after."""
    net = make_net(options(congestion_control=cc, conn_send_buf_cnt=128,
                           conn_recv_buf_size=65535), static_arp=True)
    c, s = net.connect()
    net.wire.drop_tcp(60, flags=0x10, mask=0x17, src=net.client.local_ip)  # ACK, no SYN/FIN/RST
    payload = pattern(300_000, seed=300_000)
    net.ch.send(c, payload)
    assert net.drive.run_until(lambda: len(net.sh.data[s.conn_id]) >= len(payload),
                               timeout_ms=600_000), c.info()
    assert bytes(net.sh.data[s.conn_id]) == payload
    info = c.info()  # type: ignore[attr-defined]
    assert info.retransmits > 0
    return info.cwnd, info.ssthresh, net.client.stats()["TcpRetransSegs"]  # type: ignore[attr-defined]


def test_congestion_control_under_loss_tells_the_algorithms_apart() -> None:
    # One loss, met with the same window: "none" keeps no window at all (efvitcp's
    # default), NewReno halves its window (RFC 5681), CUBIC keeps 0.7 of it (RFC 9438):
    # CUBIC's ssthresh is the higher.
    unlimited = 0xFFFFFFFF
    none, newreno, cubic = (_after_one_loss(cc) for cc in ("none", "newreno", "cubic"))
    assert none[0] == unlimited and none[1] == unlimited and none[2] > 0
    for cwnd, ssthresh, retrans in (newreno, cubic):
        assert 0 < cwnd < unlimited and 0 < ssthresh < unlimited and retrans > 0
    assert cubic[1] > newreno[1]


@pytest.mark.parametrize("cc", ["newreno", "cubic"])
def test_congestion_window_grows_without_loss(cc: str) -> None:
    _net, c, _s = transfer(200_000, congestion_control=cc, conn_send_buf_cnt=256,
                         conn_recv_buf_size=65535)
    assert c.info().cwnd > 10 * 960  # type: ignore[attr-defined]


@pytest.mark.parametrize("send_buf_1k, mss", [(True, 960), (False, 1460)])
def test_send_buffer_size_caps_mss(send_buf_1k: bool, mss: int) -> None:
    _net, c, _s = transfer(20_000, send_buf_1k=send_buf_1k)
    assert c.info().mss == mss  # type: ignore[attr-defined]


def _ack_delay_ns(delayed_ack_ms: int) -> int:
    """Virtual time from one small segment's send to the ACK that frees it (the receiver
    sends nothing back)."""
    net = make_net(options(delayed_ack_ms=delayed_ack_ms), static_arp=True)
    c, _s = net.connect()
    net.drive.run_for(50)  # the handshake's own ACKs settled
    una = c.info().snd_una
    start = net.wire.now_ns
    c.send(b"x" * 10)
    assert net.drive.run_until(lambda: c.info().snd_una != una)
    return net.wire.now_ns - start


def test_delayed_ack() -> None:
    # A lone segment: ACKed at once with 0, after the delayed-ACK timer with 10 ms (the
    # sim wire's virtual clock: deterministic, not a wall-time assertion).
    assert _ack_delay_ns(0) < 2_000_000
    assert _ack_delay_ns(10) >= 10_000_000
