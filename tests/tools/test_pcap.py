"""The pcap reader/writer: formats, byte orders, truncation, cooked captures."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from pollnet.tools.pcap import PcapError, PcapReader, PcapWriter, read_pcap

from .frames_util import tcp_frame


def test_round_trip_keeps_frames_and_nanoseconds(tmp_path: Path) -> None:
    frames = [tcp_frame(("10.0.0.1", 1000 + i), ("10.0.0.2", 80), i, b"x" * i) for i in range(5)]
    with PcapWriter(tmp_path / "a.pcap") as w:
        for i, f in enumerate(frames):
            w.write(f, 1_700_000_000_123_456_789 + i)
    recs = read_pcap(tmp_path / "a.pcap")
    assert [r.data for r in recs] == frames
    assert recs[0].ts_ns == 1_700_000_000_123_456_789 and recs[4].orig_len == len(frames[4])


@pytest.mark.parametrize("endian", ["<", ">"])
def test_microsecond_files_in_either_byte_order(tmp_path: Path, endian: str) -> None:
    frame = tcp_frame(("10.0.0.1", 1), ("10.0.0.2", 2), 7, b"hello")
    body = struct.pack(endian + "IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    body += struct.pack(endian + "IIII", 12, 345678, len(frame), len(frame)) + frame
    (tmp_path / "u.pcap").write_bytes(body)
    (rec,) = read_pcap(tmp_path / "u.pcap")
    assert rec.ts_ns == 12_345_678_000 and rec.data == frame


def test_truncated_file_ends_at_the_last_whole_record(tmp_path: Path) -> None:
    p = tmp_path / "t.pcap"
    with PcapWriter(p) as w:
        w.write(b"\x00" * 60, 1)
        w.write(b"\x01" * 60, 2)
    p.write_bytes(p.read_bytes()[:-10])
    assert len(read_pcap(p)) == 1


def test_snaplen_records_the_wire_length(tmp_path: Path) -> None:
    with PcapWriter(tmp_path / "s.pcap", snaplen=64) as w:
        w.write(b"\xaa" * 1000, 5)
    (rec,) = read_pcap(tmp_path / "s.pcap")
    assert len(rec.data) == 64 and rec.orig_len == 1000


def test_linux_cooked_capture_becomes_ethernet(tmp_path: Path) -> None:
    frame = tcp_frame(("10.0.0.1", 1), ("10.0.0.2", 2), 7, b"hi")
    sll = struct.pack("!HHHQH", 0, 1, 6, 0, 0x0800) + frame[14:]
    body = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 113)
    body += struct.pack("<IIII", 1, 0, len(sll), len(sll)) + sll
    (tmp_path / "c.pcap").write_bytes(body)
    (rec,) = read_pcap(tmp_path / "c.pcap")
    assert rec.data[12:] == frame[12:]


def test_not_a_pcap_says_so(tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"\x0a\x0d\x0d\x0a" + bytes(40))  # pcapng
    with pytest.raises(PcapError, match="pcapng"):
        PcapReader(tmp_path / "x")
