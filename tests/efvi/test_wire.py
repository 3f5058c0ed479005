"""The sim wire and the stack's surroundings: scripted drops, pcap, virtual time,
errors that name the fix, links that are not there."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest
from efvi_util import PORT, Recorder, make_net, options, pattern

from pollnet.backends.efvi import (
    EfviError,
    SimDriver,
    SimWire,
    TcpClient,
    TcpServer,
    footprint,
)
from pollnet.backends.efvi.link.sim import ACK, SYN
from pollnet.config import EfviOptions, SimOptions
from pollnet.errors import BackendUnavailable, ConfigError
from pollnet.probe import efvi_build_info


def pcap_frames(path: Path) -> list[bytes]:
    raw = path.read_bytes()
    magic, _, _, _, _, _, linktype = struct.unpack("<IHHiIII", raw[:24])
    assert magic in (0xA1B2C3D4, 0xA1B23C4D) and linktype == 1  # Ethernet
    frames, off = [], 24
    while off + 16 <= len(raw):
        _, _, incl, _ = struct.unpack("<IIII", raw[off : off + 16])
        frames.append(raw[off + 16 : off + 16 + incl])
        off += 16 + incl
    return frames


def test_dropped_syn_is_retransmitted() -> None:
    n = make_net(static_arp=True)
    n.wire.drop_tcp(1, flags=SYN)  # the client's first SYN (not the SYN-ACK: exact flags)
    start = n.wire.now_ns
    c, _ = n.connect()
    assert n.wire.stats()["dropped"] == 1
    assert n.client.stats()["TcpOutSegs"] >= 3  # SYN, SYN again, ACK
    assert n.wire.now_ns - start >= 100_000_000  # waited at least min_rto_ms
    assert c.is_established


def test_dropped_syn_ack_from_the_server_only() -> None:
    n = make_net(static_arp=True)
    n.wire.drop_tcp(1, flags=SYN | ACK, src=n.server.local_ip)
    c, s = n.connect()
    assert n.wire.stats()["dropped"] == 1
    assert c.is_established and s.is_established


def test_wire_pcap_records_every_frame(tmp_path: Path) -> None:
    path = tmp_path / "wire.pcap"
    n = make_net(pcap=str(path))
    c, _ = n.connect()
    c.send(b"captured payload")
    n.drive.run_for(50)
    frames = pcap_frames(path)
    assert len(frames) == n.wire.stats()["sent"]
    assert any(b"captured payload" in f for f in frames)
    assert any(f[12:14] == b"\x08\x06" for f in frames)  # the ARP exchange


def test_link_pcap_from_options(tmp_path: Path) -> None:
    path = tmp_path / "client.pcap"
    wire = SimWire()
    server = TcpServer(options(), port=PORT, wire=wire)
    client = TcpClient(options(pcap=str(path)), wire=wire)
    sh, ch = Recorder(), Recorder()
    drive = SimDriver(wire, (server, sh), (client, ch))
    c = client.connect(server.local_ip, PORT)
    assert drive.run_until(lambda: c.is_established)
    frames = pcap_frames(path)
    assert len(frames) >= 3  # ARP request/reply, SYN, SYN-ACK, ACK: in and out


def test_a_full_queue_tail_drops_and_every_frame_is_accounted_for() -> None:
    # A 16-frame queue behind a 50 Mbit/s link, with duplicates (each copy takes a slot of
    # the wire's frame pool): the transfer loses frames to the queue, recovers them, and
    # once the wire is idle every frame put on it was delivered or dropped.
    sh = Recorder()
    n = make_net(options(congestion_control="newreno"), sh=sh, seed=11, queue_frames=16,
                 bandwidth_mbps=50, duplicate=0.05, static_arp=True)
    c, s = n.connect()
    payload = pattern(300_000, 11)
    n.ch.send(c, payload)
    assert n.drive.run_until(lambda: len(sh.data[s.conn_id]) == len(payload),
                             timeout_ms=600_000)
    assert sh.data[s.conn_id] == payload
    n.drive.run_for(1_000)  # the last ACKs land
    assert n.wire.next_arrival_ns() is None
    ws = n.wire.stats()
    assert ws["queue_drops"] > 0 and ws["duplicated"] > 0
    assert ws["sent"] + ws["duplicated"] == ws["delivered"] + ws["dropped"] + ws["queue_drops"]


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="the limit measured on 3.11")
def test_endpoints_keep_cpythons_fast_attribute_layout() -> None:
    # Not a timing test: past MAX_FAST_ATTRS instance attributes, CPython 3.11 moves
    # them to a dict and every self.x of poll() gets slower (efvitcp/endpoint.py says by how much).
    # Put what a new feature needs per endpoint into an existing attribute.
    from pollnet.backends.efvi.efvitcp.endpoint import MAX_FAST_ATTRS

    wire = SimWire()
    server = TcpServer(options(), port=PORT, wire=wire)
    client = TcpClient(options(), wire=wire)
    client.connect(server.local_ip, PORT)
    SimDriver(wire, (server, Recorder()), (client, Recorder())).run_for(10)
    for ep in (server, client):
        assert len(vars(ep)) <= MAX_FAST_ATTRS, sorted(vars(ep))


def test_wire_options_and_overrides() -> None:
    wire = SimWire(SimOptions(loss=0.5, seed=3), loss=0.0, delay_us=500)
    assert wire.options.loss == 0.0 and wire.options.seed == 3
    assert wire.options.delay_us == 500
    with pytest.raises(ValueError):
        SimWire(loss=1.5)


def test_virtual_time_delay_is_respected() -> None:
    n = make_net(delay_us=5_000)  # 5 ms each way
    start = n.wire.now_ns
    n.connect()
    # ARP request + reply, SYN, SYN-ACK, ACK: five one-way trips, nothing faster
    assert n.wire.now_ns - start == 25_000_000


def test_addresses_on_the_wire() -> None:
    wire = SimWire()
    a = TcpServer(options(), wire=wire)
    b = TcpClient(options(), wire=wire, local_ip="10.0.9.9")
    c = TcpClient(options(), wire=wire)
    assert (a.local_ip, b.local_ip, c.local_ip) == ("10.0.0.1", "10.0.9.9", "10.0.0.2")
    assert a.mac == bytes([2, 0, 10, 0, 0, 1])
    with pytest.raises(ValueError, match="already on this sim wire"):
        TcpClient(options(), wire=wire, local_ip="10.0.0.1")


def test_listen_errors_name_the_port() -> None:
    wire = SimWire()
    server = TcpServer(options(), port=PORT, wire=wire)
    with pytest.raises(EfviError, match=str(PORT)):
        server.listen(PORT)
    server.unlisten(PORT)
    with pytest.raises(EfviError, match="does not listen"):
        server.unlisten(PORT)


def test_connect_argument_errors() -> None:
    client = TcpClient(options(), wire=SimWire())
    with pytest.raises(EfviError, match="IPv4"):
        client.connect("not-an-ip", 80)
    with pytest.raises(EfviError, match="ports"):
        client.connect("10.0.0.1", 0)
    with pytest.raises(EfviError, match=r"subnet|route|gateway"):
        client.connect("192.168.1.1", 80)  # off the wire's subnet, no gateway


def test_closed_endpoint_refuses_use() -> None:
    n = make_net()
    c, _ = n.connect()
    n.client.close()
    assert n.client.closed and c.is_closed
    with pytest.raises(EfviError, match="closed"):
        n.client.poll(n.ch)
    with pytest.raises(EfviError, match="closed"):
        c.send(b"x")
    n.client.close()  # twice is fine


def test_bad_config_is_an_error_naming_the_field() -> None:
    with pytest.raises(EfviError, match=r"conn_send_buf_cnt|recv_buf|invalid|INVAL"):
        TcpClient(EfviOptions(conn_send_buf_cnt=1, conn_recv_buf_size=1), wire=SimWire())


def test_stats_are_named_counters() -> None:
    n = make_net()
    n.connect()
    stats = n.client.stats()
    assert {"frames_in", "frames_out", "TcpInSegs", "TcpOutSegs"} <= set(stats)
    assert stats["frames_out"] > 0
    assert n.client.link_stats()["sent"] == n.wire.stats()["sent"]


def test_footprint_grows_with_the_knobs() -> None:
    small = footprint(options(), max_conn_cnt=1)
    assert footprint(options(conn_send_buf_cnt=128), max_conn_cnt=1) > small
    assert footprint(options(send_buf_1k=False), max_conn_cnt=1) > small
    assert footprint(options(), max_conn_cnt=10) > small
    default_client = footprint(EfviOptions(), max_conn_cnt=1)
    default_server = footprint(EfviOptions())
    assert default_server > 150 * default_client  # 200 slots of ~0.55 MB


def test_real_link_that_is_not_built_or_not_there() -> None:
    # The interface is checked before the link is opened, on every real link.
    for link in ("efvi", "af_packet"):
        with pytest.raises(ConfigError, match=r"^efvi.interface = 'no-such-nic': no such "
                                              r"network interface here"):
            TcpClient(EfviOptions(link=link, interface="no-such-nic", local_ip="10.9.9.9"))
    # An existing interface, and a link this build does not have: it says so.
    if "not built" in (efvi_build_info() or ""):
        with pytest.raises(BackendUnavailable, match="this build has no efvi link"):
            TcpClient(EfviOptions(link="efvi", interface="lo", local_ip="10.9.9.9"))
