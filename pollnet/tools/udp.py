"""Busy-polled UDP receiver and sender, unicast and multicast (pollnet's UdpReceiver /
UdpSender), on kernel sockets.

Which backends: the `socket` backend uses exactly these. The `efvi` backend's native core
has no UDP (it is a TCP stack; adding UDP would mean changing its receive path), so UDP
next to an efvi application also goes through these kernel sockets -- or, to see UDP frames
on a link without the kernel, use `pollnet.tools.frames.LinkFrameReceiver` with
`udp_only=True`. TCPDirect has its own UDP (zfur/zfut) that pollnet does not bind yet.

    rx = UdpReceiver(5000, group="239.1.2.3", iface_ip="10.213.7.1")
    while running:
        rx.recv(lambda data, src: ...)          # never blocks
    UdpSender("239.1.2.3", 5000, iface_ip="10.213.7.2").write(b"tick")
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from types import TracebackType
from typing import Self

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
