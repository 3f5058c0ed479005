"""What every backend's `PollTcpClient` shares: the facade over the current connection
(`conn`, `is_connected`, `last_error`, the writes, `close`), the reconnect schedule
(one attempt per `conn_retry_sec`, the connect timeout), the connect-failed bookkeeping
and the disconnect notices.

A backend starts attempts (`_start_connect`), watches them and abandons them
(`_abandon_connect`); its `poll()` stays its own, reading these attributes directly.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from pollnet.api import BytesLike
from pollnet.config import ClientConfig
from pollnet.connection import ConnectionBase, error_text
from pollnet.handler import HandlerMethods
from pollnet.timeouts import seconds_to_ns

NEVER = 1 << 62  # a time no clock reaches: no further connect attempt

ConnT = TypeVar("ConnT", bound=ConnectionBase)
PendingT = TypeVar("PendingT")


class ClientBase(Generic[ConnT, PendingT]):
    """`ConnT`: the backend's connection; `PendingT`: its handle of a connect in progress."""

    def __init__(self, cfg: ClientConfig) -> None:
        self._retry_ns = seconds_to_ns(cfg.conn_retry_sec)
        self._connect_timeout_ns = seconds_to_ns(cfg.conn_timeout_sec)
        self._closed: list[ConnectionBase] = []
        self._conn: ConnT | None = None
        self._connecting: PendingT | None = None
        self._connect_deadline_ns = 0
        self._next_connect_ns = 0  # the first poll connects
        self._error = ""
        self.connect_attempts = 0

    # ---------------------------------------------------------------- the pollnet API

    def allow_reconnect(self) -> None:
        self._next_connect_ns = 0

    @property
    def conn(self) -> ConnT | None:
        conn = self._conn
        return conn if conn is not None and conn._connected else None

    @property
    def is_connected(self) -> bool:
        conn = self._conn
        return conn is not None and conn._connected

    @property
    def last_error(self) -> str:
        conn = self._conn
        if conn is not None and conn._error:
            return conn._error
        return self._error

    def write(self, data: BytesLike, more: bool = False) -> bool:
        conn = self._conn
        return conn.write(data, more) if conn is not None else False

    def write_some(self, data: BytesLike, more: bool = False) -> int:
        conn = self._conn
        return conn.write_some(data, more) if conn is not None else -1

    def write_nonblock(self, data: BytesLike, more: bool = False) -> bool:
        conn = self._conn
        return conn.write_nonblock(data, more) if conn is not None else False

    def close(self, reason: str = "closed by application") -> None:
        if self._conn is not None:
            self._conn.close(reason)
        elif self._connecting is not None:
            self._abandon_connect()
            self._error = reason

    # ---------------------------------------------------------------- connecting

    def _connect_due(self, now_ns: int) -> bool:
        """True when an attempt may start now; the next one is then due `conn_retry_sec`
        later (never, when that is 0, until `allow_reconnect`)."""
        if now_ns < self._next_connect_ns:
            return False
        self._next_connect_ns = now_ns + self._retry_ns if self._retry_ns else NEVER
        return True

    def _connect_timed_out(self, now_ns: int) -> bool:
        return bool(self._connect_timeout_ns) and now_ns >= self._connect_deadline_ns

    def _fail(self, methods: HandlerMethods, reason: str, err: int = 0) -> None:
        """An attempt failed: record why, tell the handler."""
        self._error = error_text(reason, err)
        methods.on_connect_failed()

    def _connect_failed(self, methods: HandlerMethods, reason: str, err: int = 0) -> None:
        """Abandon the attempt in progress, then `_fail`."""
        self._abandon_connect()
        self._fail(methods, reason, err)

    def _abandon_connect(self) -> None:
        """Drop the connect in progress (if any), freeing its transport."""
        raise NotImplementedError

    # ---------------------------------------------------------------- disconnect notices

    def _drain(self, methods: HandlerMethods) -> None:
        closed = self._closed
        while closed:
            conn = closed.pop(0)
            if conn is self._conn:
                self._conn = None
                self._error = conn._error
            methods.on_disconnect(conn)
