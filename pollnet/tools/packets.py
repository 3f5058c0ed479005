"""Ethernet/IPv4/TCP/UDP headers of a captured frame, parsed without reading out of bounds:
a frame that is too short or not IPv4 gives a Packet with what could be read."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

ETH_IPV4 = 0x0800
ETH_VLAN = 0x8100
PROTO_TCP = 6
PROTO_UDP = 17
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


@dataclass(frozen=True)
class Packet:
    ethertype: int
    src_ip: str = ""
    dst_ip: str = ""
    proto: int = 0
    src_port: int = 0
    dst_port: int = 0
    seq: int = 0
    ack: int = 0
    flags: int = 0
    window: int = 0
    payload: bytes = b""
    fragment: bool = False

    @property
    def is_tcp(self) -> bool:
        return self.proto == PROTO_TCP and not self.fragment

    @property
    def is_udp(self) -> bool:
        return self.proto == PROTO_UDP and not self.fragment


def parse_frame(frame: bytes) -> Packet | None:
    """None when the frame is not even an Ethernet header."""
    if len(frame) < 14:
        return None
    off = 12
    (etype,) = struct.unpack_from("!H", frame, off)
    off = 14
    if etype == ETH_VLAN and len(frame) >= 18:
        (etype,) = struct.unpack_from("!H", frame, 16)
        off = 18
    if etype != ETH_IPV4 or len(frame) < off + 20 or frame[off] >> 4 != 4:
        return Packet(etype)
    ihl = (frame[off] & 15) * 4
    (total,) = struct.unpack_from("!H", frame, off + 2)
    (frag,) = struct.unpack_from("!H", frame, off + 6)
    proto = frame[off + 9]
    src = str(ipaddress.IPv4Address(frame[off + 12 : off + 16]))
    dst = str(ipaddress.IPv4Address(frame[off + 16 : off + 20]))
    end = min(len(frame), off + total) if total >= ihl else len(frame)
    l4 = frame[off + ihl : end]
    fragment = (frag & 0x3FFF) != 0
    if fragment or ihl < 20:
        return Packet(etype, src, dst, proto, fragment=fragment)
    if proto == PROTO_TCP and len(l4) >= 20:
        sport, dport, seq, ack, doff_flags, win = struct.unpack_from("!HHIIHH", l4)
        doff = (doff_flags >> 12) * 4
        if doff < 20 or doff > len(l4):
            return Packet(etype, src, dst, proto)
        return Packet(etype, src, dst, proto, sport, dport, seq, ack, doff_flags & 0x3F, win,
                      bytes(l4[doff:]))
    if proto == PROTO_UDP and len(l4) >= 8:
        sport, dport, ulen = struct.unpack_from("!HHH", l4)
        body = l4[8 : max(8, min(ulen, len(l4)))]
        return Packet(etype, src, dst, proto, sport, dport, payload=bytes(body))
    return Packet(etype, src, dst, proto)
