"""The efvi backend at the efvitcp level: our user-space TCP/IPv4 stack (native/) on a
link (sim, af_packet, af_xdp), driven by `poll(handler)`. See docs/efvi.md.

Importing this package never fails; constructing a stack raises BackendUnavailable when
the compiled core (`pollnet._pncore`) is not built.
"""

from pollnet.backends.efvi._core import available
from pollnet.backends.efvi.client import TcpClient
from pollnet.backends.efvi.connection import Connection, ConnInfo
from pollnet.backends.efvi.endpoint import Endpoint, footprint
from pollnet.backends.efvi.errors import (
    ConnectionClosedError,
    ConnectionTableFull,
    EfviError,
    LinkError,
    TryAgain,
)
from pollnet.backends.efvi.handler import EfviHandler
from pollnet.backends.efvi.server import TcpServer
from pollnet.backends.efvi.sim import SimDriver, SimStalled, SimWire

__all__ = [
    "ConnInfo",
    "Connection",
    "ConnectionClosedError",
    "ConnectionTableFull",
    "EfviError",
    "EfviHandler",
    "Endpoint",
    "LinkError",
    "SimDriver",
    "SimStalled",
    "SimWire",
    "TcpClient",
    "TcpServer",
    "TryAgain",
    "available",
    "footprint",
]
