"""pollnet: busy-polled non-blocking TCP with interchangeable transports.

    import pollnet
    cfg = pollnet.load_config("pollnet.toml")
    client = pollnet.create_client(cfg)
    while True:
        client.poll(handler)
"""

from pollnet.api import PollConnection, PollTcpClient, PollTcpServer, TcpHandler
from pollnet.config import Config, load_config
from pollnet.errors import (
    BackendUnavailable,
    ConfigError,
    HandlerError,
    PollnetError,
    TransportError,
)
from pollnet.factory import create_client, create_server

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailable",
    "Config",
    "ConfigError",
    "HandlerError",
    "PollConnection",
    "PollTcpClient",
    "PollTcpServer",
    "PollnetError",
    "TcpHandler",
    "TransportError",
    "__version__",
    "create_client",
    "create_server",
    "load_config",
]
