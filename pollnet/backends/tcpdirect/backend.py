"""The `tcpdirect` backend: AMD/Solarflare TCPDirect (libonload_zf.so) through cffi.

`[tcpdirect] library` names the library (default libonload_zf.so, found on the library
path); `[tcpdirect] attributes` are ZF attributes set on every stack after ZF_ATTR's.
Nothing is loaded until a client or server is made, so importing this module is free.
"""

from __future__ import annotations

from pollnet.backends.tcpdirect.client import TcpdirectTcpClient
from pollnet.backends.tcpdirect.connection import TcpdirectConnection
from pollnet.backends.tcpdirect.server import TcpdirectTcpServer
from pollnet.config import AnyConfig, TcpdirectConfig, TcpdirectOptions

__all__ = [
    "TcpdirectConnection",
    "TcpdirectTcpClient",
    "TcpdirectTcpServer",
    "create_client",
    "create_server",
]


def _options(cfg: AnyConfig) -> TcpdirectOptions:
    # Another backend's config carries no [tcpdirect] section: use the defaults.
    return cfg.tcpdirect if isinstance(cfg, TcpdirectConfig) else TcpdirectOptions()


def create_client(cfg: AnyConfig) -> TcpdirectTcpClient:
    return TcpdirectTcpClient(cfg.client, _options(cfg))


def create_server(cfg: AnyConfig) -> TcpdirectTcpServer:
    return TcpdirectTcpServer(cfg.server, _options(cfg))
