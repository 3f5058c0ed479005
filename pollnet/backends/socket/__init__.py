"""The `socket` backend: the kernel's TCP through non-blocking sockets and epoll(0).

No threads and no blocking call: connect is non-blocking and watched with a zero-timeout
epoll, every socket is O_NONBLOCK, TCP_NODELAY is on for every connection.
"""

from __future__ import annotations

from pollnet.backends.socket.client import SocketTcpClient
from pollnet.backends.socket.connection import SocketConnection
from pollnet.backends.socket.server import SocketTcpServer
from pollnet.config import AnyConfig

__all__ = [
    "SocketConnection",
    "SocketTcpClient",
    "SocketTcpServer",
    "create_client",
    "create_server",
]


def create_client(cfg: AnyConfig) -> SocketTcpClient:
    return SocketTcpClient(cfg.client)


def create_server(cfg: AnyConfig) -> SocketTcpServer:
    return SocketTcpServer(cfg.server)
