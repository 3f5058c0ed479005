"""Handlers for tests: one that records everything, one that echoes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pollnet.api import PollConnection

RemainingPolicy = Callable[[PollConnection, memoryview], int]


class RecordingHandler:
    """Records every callback. `received` holds the bytes consumed, in order;
    `presented` a copy of each view handed to `on_tcp_data`. `remaining(conn, data)`
    decides how many bytes to leave (default: none); `on_connected` / `on_data` hooks
    run after recording."""

    def __init__(
        self,
        remaining: RemainingPolicy | None = None,
        on_connected: Callable[[PollConnection], object] | None = None,
        on_data: Callable[[PollConnection, memoryview], object] | None = None,
    ) -> None:
        self.remaining = remaining
        self.on_connected_hook = on_connected
        self.on_data_hook = on_data
        self.events: list[tuple[str, Any]] = []
        self.connected: list[PollConnection] = []
        self.disconnected: list[PollConnection] = []
        self.connect_failed = 0
        self.send_timeouts = 0
        self.recv_timeouts = 0
        self.received = bytearray()
        self.presented: list[bytes] = []

    @property
    def conn(self) -> PollConnection | None:
        """The most recent connection still connected, if any."""
        for conn in reversed(self.connected):
            if conn.is_connected:
                return conn
        return None

    def on_tcp_connected(self, conn: PollConnection) -> None:
        self.events.append(("connected", conn))
        self.connected.append(conn)
        if self.on_connected_hook is not None:
            self.on_connected_hook(conn)

    def on_tcp_data(self, conn: PollConnection, data: memoryview) -> int:
        self.presented.append(bytes(data))
        left = self.remaining(conn, data) if self.remaining is not None else 0
        self.received += data[: len(data) - max(0, min(left, len(data)))]
        self.events.append(("data", len(data)))
        if self.on_data_hook is not None:
            self.on_data_hook(conn, data)
        return left

    def on_tcp_disconnect(self, conn: PollConnection) -> None:
        self.events.append(("disconnect", conn))
        self.disconnected.append(conn)

    def on_tcp_connect_failed(self) -> None:
        self.events.append(("connect_failed", None))
        self.connect_failed += 1

    def on_send_timeout(self, conn: PollConnection) -> None:
        self.events.append(("send_timeout", conn))
        self.send_timeouts += 1

    def on_recv_timeout(self, conn: PollConnection) -> None:
        self.events.append(("recv_timeout", conn))
        self.recv_timeouts += 1


class EchoHandler(RecordingHandler):
    """Writes back every byte it receives (and records like `RecordingHandler`)."""

    def on_tcp_data(self, conn: PollConnection, data: memoryview) -> int:
        self.presented.append(bytes(data))
        self.received += data
        conn.write(data)
        return 0
