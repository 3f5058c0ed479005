"""`TcpStream`: rebuild the byte stream of each direction of a TCP connection from captured
frames (or a pcap file), as the receiver would have read it.

    streams = TcpStreams.from_pcap("capture.pcap")
    for conn in streams.connections:
        print(conn.client, conn.server, len(conn.client_to_server.data), conn.closed)

Rules (the receiver's view, RFC 9293 sequence arithmetic modulo 2**32, any stream length):
* the stream starts after the SYN's sequence number (ISN + 1); a capture that missed the
  SYN starts at the first segment seen, and bytes before it are ignored;
* out-of-order segments wait until the gap before them fills; `holes` names gaps left;
* retransmitted and overlapping bytes are counted; the first copy received wins (as Linux
  keeps what it already queued), and a retransmission carrying *different* bytes for the
  same sequence numbers is counted in `conflicts`;
* FIN marks the end of a direction (bytes past it are ignored); RST ends the connection;
  a new SYN on a closed 4-tuple starts a new TcpStream.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pollnet.tools.packets import ACK, FIN, RST, SYN, Packet, parse_frame
from pollnet.tools.pcap import PcapReader

MASK = 0xFFFFFFFF
Endpoint = tuple[str, int]


def _signed(d: int) -> int:
    d &= MASK
    return d - (1 << 32) if d >= 1 << 31 else d


@dataclass
class Direction:
    """One direction's byte stream."""

    src: Endpoint
    dst: Endpoint
    isn: int | None = None
    base: int | None = None         # sequence number of data byte 0
    data: bytearray = field(default_factory=bytearray)
    fin_offset: int | None = None   # stream offset of the FIN
    segments: int = 0
    retransmitted_bytes: int = 0
    out_of_order_segments: int = 0
    conflicts: int = 0              # retransmitted bytes that differed from the first copy
    _pending: list[tuple[int, int, bytes]] = field(default_factory=list)
    _n: int = 0

    @property
    def complete(self) -> bool:
        """A FIN was seen and every byte before it arrived."""
        return self.fin_offset is not None and len(self.data) >= self.fin_offset

    @property
    def holes(self) -> list[tuple[int, int]]:
        """Gaps (stream offsets [start, end)) still missing after what was assembled."""
        gaps = []
        at = len(self.data)
        for off, _, chunk in sorted(self._pending):
            if off > at:
                gaps.append((at, off))
            at = max(at, off + len(chunk))
        if self.fin_offset is not None and self.fin_offset > at:
            gaps.append((at, self.fin_offset))
        return gaps

    def _offset(self, seq: int) -> int:
        assert self.base is not None
        expected = (self.base + len(self.data)) & MASK
        return len(self.data) + _signed(seq - expected)

    def syn(self, seq: int) -> None:
        if self.base is None:
            self.isn = seq
            self.base = (seq + 1) & MASK

    def segment(self, seq: int, payload: bytes, fin: bool) -> None:
        if self.base is None:
            self.base = seq  # the capture missed the SYN
        self.segments += 1
        off = self._offset(seq)
        if fin and self.fin_offset is None:
            self.fin_offset = off + len(payload)
        if not payload:
            return
        if off < 0:  # before the start of the stream
            payload = payload[-off:]
            off = 0
        if self.fin_offset is not None and off + len(payload) > self.fin_offset:
            payload = payload[: max(0, self.fin_offset - off)]
        if off > len(self.data):
            self.out_of_order_segments += 1
            self._n += 1
            heapq.heappush(self._pending, (off, self._n, payload))
            return
        self._place(off, payload)
        while self._pending and self._pending[0][0] <= len(self.data):
            o, _, p = heapq.heappop(self._pending)
            self._place(o, p, counted=True)

    def _place(self, off: int, payload: bytes, counted: bool = False) -> None:
        end = len(self.data)
        old = min(len(payload), end - off)
        if old > 0:
            if not counted:
                self.retransmitted_bytes += old
            if bytes(self.data[off : off + old]) != payload[:old]:
                self.conflicts += 1
        self.data += payload[max(old, 0):]


@dataclass
class TcpStream:
    """One connection: the client (who sent the SYN, else the first sender seen)."""

    client: Endpoint
    server: Endpoint
    client_to_server: Direction
    server_to_client: Direction
    syn_seen: bool = False
    established: bool = False
    reset: bool = False
    first_ts_ns: int = 0
    last_ts_ns: int = 0

    @property
    def closed(self) -> bool:
        """Both FINs seen, or a RST."""
        return self.reset or (self.client_to_server.fin_offset is not None and
                              self.server_to_client.fin_offset is not None)

    def direction(self, src: Endpoint) -> Direction:
        return self.client_to_server if src == self.client else self.server_to_client

    def feed(self, p: Packet, ts_ns: int) -> None:
        src = (p.src_ip, p.src_port)
        d = self.direction(src)
        self.last_ts_ns = ts_ns
        if p.flags & RST:
            self.reset = True
            return
        if p.flags & SYN:
            self.syn_seen = True
            d.syn(p.seq)
            if p.flags & ACK:
                self.established = True
            if p.payload or p.flags & FIN:
                d.segment((p.seq + 1) & MASK, p.payload, bool(p.flags & FIN))
            return
        d.segment(p.seq, p.payload, bool(p.flags & FIN))


class TcpStreams:
    """Every TCP connection in a sequence of frames, in the order they began."""

    def __init__(self) -> None:
        self.connections: list[TcpStream] = []
        self._live: dict[frozenset[Endpoint], TcpStream] = {}
        self.frames = 0
        self.non_tcp = 0

    @classmethod
    def from_pcap(cls, path: str | Path) -> TcpStreams:
        s = cls()
        s.feed_pcap(path)
        return s

    @classmethod
    def from_frames(cls, frames: Iterable[bytes | tuple[bytes, int]]) -> TcpStreams:
        s = cls()
        for f in frames:
            if isinstance(f, tuple):
                s.feed_frame(f[0], f[1])
            else:
                s.feed_frame(f)
        return s

    def feed_pcap(self, path: str | Path) -> None:
        with PcapReader(path) as r:
            for rec in r:
                self.feed_frame(rec.data, rec.ts_ns)

    def feed_frame(self, frame: bytes, ts_ns: int = 0) -> None:
        self.frames += 1
        p = parse_frame(frame)
        if p is None or not p.is_tcp:
            self.non_tcp += 1
            return
        self.feed_packet(p, ts_ns)

    def feed_packet(self, p: Packet, ts_ns: int = 0) -> None:
        src, dst = (p.src_ip, p.src_port), (p.dst_ip, p.dst_port)
        key = frozenset((src, dst))
        conn = self._live.get(key)
        new_syn = p.flags & SYN and not p.flags & ACK
        if conn is not None and new_syn and (conn.closed or (
                conn.client == src and conn.client_to_server.isn not in (None, p.seq))):
            conn = None  # the 4-tuple is reused by a new connection
        if conn is None:
            client, server = (src, dst)
            if p.flags & SYN and p.flags & ACK:
                client, server = dst, src
            conn = TcpStream(client, server, Direction(client, server),
                             Direction(server, client), first_ts_ns=ts_ns)
            self._live[key] = conn
            self.connections.append(conn)
        conn.feed(p, ts_ns)

    def find(self, port: int) -> list[TcpStream]:
        """Connections with `port` at either end."""
        return [c for c in self.connections if port in (c.client[1], c.server[1])]
