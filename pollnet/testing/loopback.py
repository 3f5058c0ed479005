"""Loopback test rigs: a polled echo server and a connected server/client pair.

Everything is polled by the test itself, on its own thread: no background threads.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from pollnet.api import PollConnection, PollTcpClient, PollTcpServer
from pollnet.config import AnyConfig, config_from_dict
from pollnet.factory import create_client, create_server
from pollnet.testing.handlers import EchoHandler, RecordingHandler
from pollnet.testing.polling import poll_until


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def loopback_config(backend: str = "socket", **sections: dict[str, Any]) -> AnyConfig:
    """A config whose server listens on 127.0.0.1:<free port> and whose client points
    there; `sections` are merged over it (`client={...}`, `server={...}`, ...)."""
    port = free_port()
    data: dict[str, Any] = {
        "backend": backend,
        "client": {"server_ip": "127.0.0.1", "server_port": port, "conn_retry_sec": 0.01},
        "server": {"listen_ip": "127.0.0.1", "port": port},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return config_from_dict(data)


def with_sections(cfg: AnyConfig, **sections: dict[str, Any]) -> AnyConfig:
    """A copy of `cfg` with some fields of some sections replaced (validated again)."""
    data = cfg.model_dump()
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return config_from_dict(data)


class EchoServer:
    """A polled echo server; `poll()` runs it once."""

    def __init__(self, cfg: AnyConfig | None = None) -> None:
        self.config = cfg if cfg is not None else loopback_config()
        self.server: PollTcpServer = create_server(self.config)
        self.handler = EchoHandler()
        self.address = self.server.address

    @property
    def port(self) -> int:
        return self.address[1]

    def client_config(self, **client: Any) -> AnyConfig:
        """The config with its client section pointing at this server."""
        values = {"server_ip": "127.0.0.1", "server_port": self.port, **client}
        return with_sections(self.config, client=values)

    def poll(self) -> None:
        self.server.poll(self.handler)

    def close(self) -> None:
        self.server.close()
        self.poll()  # deliver the disconnect notices


class Pair:
    """A server and a client connected to it over loopback, each with a recording handler."""

    def __init__(
        self,
        cfg: AnyConfig | None = None,
        server_handler: RecordingHandler | None = None,
        client_handler: RecordingHandler | None = None,
        connect: bool = True,
    ) -> None:
        cfg = cfg if cfg is not None else loopback_config()
        self.server: PollTcpServer = create_server(cfg)
        cfg = with_sections(cfg, client={"server_port": self.server.address[1]})
        self.config = cfg
        self.client: PollTcpClient = create_client(cfg)
        self.server_handler = server_handler if server_handler is not None else RecordingHandler()
        self.client_handler = client_handler if client_handler is not None else RecordingHandler()
        if connect and not self.connect():
            raise RuntimeError(f"loopback pair did not connect: {self.client.last_error}")

    def connect(self) -> bool:
        return poll_until(
            lambda: bool(self.client_handler.connected and self.server_handler.connected),
            self,
        )

    @property
    def server_conn(self) -> PollConnection:
        conn = self.server_handler.conn
        assert conn is not None, "the server has no live connection"
        return conn

    @property
    def client_conn(self) -> PollConnection:
        conn = self.client_handler.conn
        assert conn is not None, "the client has no live connection"
        return conn

    def poll(self) -> None:
        self.server.poll(self.server_handler)
        self.client.poll(self.client_handler)

    def close(self) -> None:
        self.client.close("test over")
        self.server.close("test over")
        self.poll()  # deliver the disconnect notices
        # That poll may have started a reconnect attempt: abandon it too.
        self.client.close("test over")




PairMaker = Callable[..., Pair]
"""The type of a fixture that builds pairs (`make_pair(client={...}, ...)`)."""
