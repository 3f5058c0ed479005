"""Socket options shared by the client and the server."""

from __future__ import annotations

import socket

from pollnet.api import Peername


def new_tcp_socket(interface: str) -> socket.socket:
    """A non-blocking IPv4 TCP socket, optionally bound to a device (SO_BINDTODEVICE)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if interface:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
    except OSError:
        sock.close()
        raise
    return sock


def set_nodelay(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def peer_of(sock: socket.socket) -> Peername | None:
    try:
        host, port = sock.getpeername()[:2]
    except OSError:
        return None
    return (str(host), int(port))
