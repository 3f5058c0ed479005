"""Crafted Ethernet/IPv4/TCP/UDP frames for the tools' tests (checksums filled in)."""

from __future__ import annotations

import ipaddress
import struct

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(src: str, dst: str, proto: int, l4: bytes) -> bytes:
    s, d = ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0x4000, 64, proto, 0, s, d)
    hdr = hdr[:10] + struct.pack("!H", _csum(hdr)) + hdr[12:]
    return hdr + l4


def tcp_frame(src: tuple[str, int], dst: tuple[str, int], seq: int, payload: bytes = b"",
              flags: int = 0x10, ack: int = 0) -> bytes:
    s, d = ipaddress.IPv4Address(src[0]).packed, ipaddress.IPv4Address(dst[0]).packed
    tcp = struct.pack("!HHIIHHHH", src[1], dst[1], seq & 0xFFFFFFFF, ack, (5 << 12) | flags,
                      65535, 0, 0) + payload
    pseudo = s + d + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", _csum(pseudo + tcp)) + tcp[18:]
    return MAC_B + MAC_A + b"\x08\x00" + ipv4(src[0], dst[0], 6, tcp)


def udp_frame(src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", src[1], dst[1], 8 + len(payload), 0) + payload
    return MAC_B + MAC_A + b"\x08\x00" + ipv4(src[0], dst[0], 17, udp)
