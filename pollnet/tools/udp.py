"""Busy-polled UDP receiver and sender, unicast and multicast (pollnet's UdpReceiver /
UdpSender), on kernel sockets.

Which backends: the `socket` backend uses exactly these kernel sockets. The `efvi`
backend's native core is a TCP stack with no UDP (adding it would change its receive path),
so UDP goes beside it: through these kernel sockets, or through the link itself with
`LinkUdpReceiver` / `LinkUdpSender` (frames via the link's rx_burst / tx_buf+tx_send, no
kernel on the data path; on the efvi link an ef_vi UDP filter steers the port or multicast
group to it, see pn_efvi_link_udp_filter). TCPDirect has its own UDP (zfur/zfut) that
pollnet does not bind yet.

    rx = UdpReceiver(5000, group="239.1.2.3", iface_ip="10.213.7.1")
    while running:
        rx.recv(lambda data, src: ...)          # never blocks
    UdpSender("239.1.2.3", 5000, iface_ip="10.213.7.2").write(b"tick")
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from pollnet.tools.packets import parse_frame

Address = tuple[str, int]
UdpHandler = Callable[[memoryview, Address], None]


def _is_multicast(ip: str) -> bool:
    return ipaddress.IPv4Address(ip).is_multicast


class UdpReceiver:
    """Receives datagrams sent to `port` (and `group`, when given, joined on the interface
    that has `iface_ip`). `recv(handler)` hands each waiting datagram to the handler as a
    memoryview valid only during the call, and returns how many there were."""

    def __init__(self, port: int, *, bind_ip: str = "0.0.0.0", group: str | None = None,
                 iface_ip: str = "0.0.0.0", bufsize: int = 65536,
                 rcvbuf: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if rcvbuf:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.group = group
            if group is not None:
                if not _is_multicast(group):
                    raise ValueError(f"group {group} is not an IPv4 multicast address")
                # Bound to the group: only its datagrams, not every one to the port.
                self.sock.bind((group, port))
                mreq = socket.inet_aton(group) + socket.inet_aton(iface_ip)
                self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
            else:
                self.sock.bind((bind_ip, port))
            self.sock.setblocking(False)
        except BaseException:
            self.sock.close()
            raise
        self.port = self.sock.getsockname()[1]
        self._buf = bytearray(bufsize)
        self._view = memoryview(self._buf)
        self.datagrams = 0
        self.bytes = 0

    def recv(self, handler: UdpHandler, max_datagrams: int = 64) -> int:
        n = 0
        while n < max_datagrams:
            try:
                size, src = self.sock.recvfrom_into(self._buf)
            except (BlockingIOError, InterruptedError):
                break
            n += 1
            self.datagrams += 1
            self.bytes += size
            handler(self._view[:size], src)
        return n

    def read(self) -> tuple[bytes, Address] | None:
        """One datagram (copied) or None."""
        try:
            data, src = self.sock.recvfrom(len(self._buf))
        except (BlockingIOError, InterruptedError):
            return None
        self.datagrams += 1
        self.bytes += len(data)
        return data, src

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class UdpSender:
    """Sends datagrams to dst_ip:port; for a multicast destination, out of the interface
    with `iface_ip`, with `ttl` and loopback as given."""

    def __init__(self, dst_ip: str, port: int, *, iface_ip: str | None = None,
                 local_port: int = 0, ttl: int = 1, loop: bool = True) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            if local_port or iface_ip:
                self.sock.bind((iface_ip or "0.0.0.0", local_port))
            if _is_multicast(dst_ip):
                self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
                self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, int(loop))
                if iface_ip:
                    self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                                         socket.inet_aton(iface_ip))
            self.sock.connect((dst_ip, port))
            self.sock.setblocking(False)
        except BaseException:
            self.sock.close()
            raise
        self.datagrams = 0

    def write(self, data: bytes | bytearray | memoryview) -> bool:
        """True when the kernel took the datagram (False: its buffer is full, try again)."""
        try:
            self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            return False
        self.datagrams += 1
        return True

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_frame(src_mac: bytes, dst_mac: bytes, src: Address, dst: Address,
              payload: bytes | bytearray | memoryview, ip_id: int = 0, ttl: int = 64) -> bytes:
    """An Ethernet/IPv4/UDP frame with both checksums filled in."""
    s, d = ipaddress.IPv4Address(src[0]).packed, ipaddress.IPv4Address(dst[0]).packed
    body = bytes(payload)
    udp = struct.pack("!HHHH", src[1], dst[1], 8 + len(body), 0) + body
    c = _csum(s + d + struct.pack("!BBH", 0, 17, len(udp)) + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", c) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ip_id & 0xFFFF, 0x4000, ttl, 17,
                     0, s, d)
    ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    return dst_mac + src_mac + b"\x08\x00" + ip + udp


def multicast_mac(group: str) -> bytes:
    """The Ethernet address of an IPv4 multicast group (01:00:5e + the low 23 bits)."""
    g = ipaddress.IPv4Address(group).packed
    return bytes([0x01, 0x00, 0x5E, g[1] & 0x7F, g[2], g[3]])


class LinkUdpReceiver:
    """Datagrams to `port` (on `ip`, or a multicast `group`) straight from a pollnet link
    (a `pn_link *`), no kernel socket on the way. On the efvi link this adds an ef_vi UDP
    filter for ip:port (removed by close()); other links see every frame anyway. For a
    multicast group also join it with a kernel socket (UdpReceiver) so IGMP tells the
    switches: the link does not speak IGMP."""

    def __init__(self, link: Any, port: int, *, ip: str | None = None,
                 group: str | None = None) -> None:
        from pollnet.backends.efvi.core import binding as _core
        from pollnet.tools.frames import LinkFrameReceiver

        self.ffi, self.lib = _core.require()
        self.link, self.port = link, port
        self._frames = LinkFrameReceiver(link, udp_port=port)
        self._filter: int | None = None
        dst = group or ip
        name = self.ffi.string(link.ops.name).decode()
        if name == "efvi":
            if dst is None:
                raise ValueError("the efvi link needs the ip (or group) to filter on")
            self._filter = int(ipaddress.IPv4Address(dst))
            rc = self.lib.pn_efvi_link_udp_filter(link, self._filter, port, 1)
            if rc < 0:
                raise OSError(f"efvi UDP filter for {dst}:{port}: "
                              f"{self.ffi.string(link.err).decode()}")
        self._dst = dst
        self.datagrams = 0

    def recv(self, handler: UdpHandler) -> int:
        got = 0

        def on(frame: memoryview, ts: int) -> None:
            nonlocal got
            p = parse_frame(bytes(frame))
            if p is None or (self._dst is not None and p.dst_ip != self._dst):
                return
            got += 1
            handler(memoryview(p.payload), (p.src_ip, p.src_port))

        self._frames.recv(on)
        self.datagrams += got
        return got

    def close(self) -> None:
        if self._filter is not None:
            self.lib.pn_efvi_link_udp_filter(self.link, self._filter, self.port, 0)
            self._filter = None


class LinkUdpSender:
    """Datagrams from src to dst straight out of a pollnet link (tx_buf, tx_send,
    tx_flush). The destination MAC: the group's for multicast, else `dst_mac`, else the
    kernel's neighbour table (rtnetlink) must already know dst."""

    def __init__(self, link: Any, src: Address, dst: Address, *,
                 dst_mac: bytes | None = None) -> None:
        from pollnet.backends.efvi.core import binding as _core

        self.ffi, self.lib = _core.require()
        self.link, self.src, self.dst = link, src, dst
        self.src_mac = bytes(self.ffi.buffer(link.mac, 6))
        if _is_multicast(dst[0]):
            dst_mac = multicast_mac(dst[0])
        elif dst_mac is None:
            route = self.ffi.new("pn_route *")
            err = self.ffi.new("char[256]")
            rc = self.lib.pn_route_lookup(int(ipaddress.IPv4Address(dst[0])), route, err, 256)
            if rc < 0 or not route.has_mac:
                raise OSError(f"no neighbour entry for {dst[0]}: give dst_mac or ping it")
            dst_mac = bytes(self.ffi.buffer(route.mac, 6))
        self.dst_mac = dst_mac
        self._cap = self.ffi.new("uint32_t *")
        self.datagrams = 0

    def write(self, data: bytes | bytearray | memoryview) -> bool:
        """True when the link took the datagram (False: its ring is full, try again)."""
        frame = udp_frame(self.src_mac, self.dst_mac, self.src, self.dst, data,
                          ip_id=self.datagrams)
        ops = self.link.ops
        buf = ops.tx_buf(self.link, self._cap)
        if buf == self.ffi.NULL or self._cap[0] < len(frame):
            return False
        self.ffi.memmove(buf, frame, len(frame))
        if ops.tx_send(self.link, buf, len(frame)) < 0:
            return False
        ops.tx_flush(self.link)
        self.datagrams += 1
        return True
