"""The efvi backend at the efvitcp level: our user-space TCP/IPv4 stack (native/) on a
link (sim, af_packet, af_xdp), driven by `poll(handler)`. See docs/efvi.md.

Importing this package never fails; constructing a stack raises BackendUnavailable when
the compiled core (`pollnet._pncore`) is not built.
"""

from pollnet.backends.efvi.core.binding import available
from pollnet.backends.efvi.efvitcp.client import TcpClient
from pollnet.backends.efvi.efvitcp.connection import Connection, ConnInfo
from pollnet.backends.efvi.efvitcp.endpoint import Endpoint, footprint
from pollnet.backends.efvi.efvitcp.handler import EfviHandler
from pollnet.backends.efvi.efvitcp.server import TcpServer
from pollnet.backends.efvi.errors import (
    ConnectionClosedError,
    ConnectionTableFull,
    EfviError,
    LinkError,
    TryAgain,
)
from pollnet.backends.efvi.link.sim import SimWire
from pollnet.backends.efvi.sim_driver import SimDriver, SimStalled

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
