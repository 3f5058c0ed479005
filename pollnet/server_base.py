"""What every backend's `PollTcpServer` shares: `address`, `max_conns`, `conn_count`,
`foreach_conn`, `is_closed`, `last_error`, and `close` (once: stop listening, close every
connection, then whatever the backend frees last).

A backend keeps its announced connections in `_conns` (keyed as it likes) until their
disconnect notice; its `poll()`, accepting and `_drain` stay its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from pollnet.api import Peername, PollConnection
from pollnet.config import ServerConfig
from pollnet.connection import ConnectionBase

ConnT = TypeVar("ConnT", bound=ConnectionBase)


class ServerBase(Generic[ConnT]):
    _address: Peername

    def __init__(self, cfg: ServerConfig) -> None:
        self._max = cfg.max_conns
        self._closed: list[ConnectionBase] = []
        self._conns: dict[int, ConnT] = {}  # announced, live or awaiting their notice
        self._is_closed = False
        self._error = ""

    @property
    def address(self) -> Peername:
        return self._address

    @property
    def max_conns(self) -> int:
        return self._max

    @property
    def conn_count(self) -> int:
        return len(self._conns) - len(self._closed)

    def foreach_conn(self, fn: Callable[[PollConnection], object]) -> None:
        for conn in list(self._conns.values()):
            if conn._connected:
                fn(conn)

    def close(self, reason: str = "server closed") -> None:
        if self._is_closed:
            return
        self._is_closed = True
        self._error = reason
        self._stop_listening()
        for conn in list(self._conns.values()):
            conn._shutdown(reason)
        self._after_close()

    def _stop_listening(self) -> None:
        """`close`, before the connections close: take no new ones."""

    def _after_close(self) -> None:
        """`close`, after every connection closed."""

    @property
    def is_closed(self) -> bool:
        return self._is_closed

    @property
    def last_error(self) -> str:
        return self._error
