"""What every backend's `PollTcpClient` shares: the facade over the current connection
(`conn`, `is_connected`, `last_error`, the writes, `close`), the reconnect schedule
(one attempt per `conn_retry_sec`, the connect timeout), the connect-failed bookkeeping
and the disconnect notices.

A backend starts attempts (`_start_connect`), watches them and abandons them
(`_abandon_connect`). `PolledClient` adds the poll() of a backend that asks its
transport each poll (socket, tcpdirect); efvi's is driven by its stack's events instead
(backends/efvi/adapter/base.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

from pollnet.api import BytesLike
from pollnet.config import ClientConfig
from pollnet.connection import ConnectionBase, error_text
from pollnet.handler import HandlerMethods
from pollnet.poll_owner import CompiledPollOwner
from pollnet.timeouts import IdleTimeouts, seconds_to_ns

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


class PolledClient(ClientBase[ConnT, PendingT], CompiledPollOwner):
    """The poll() of a client whose transport is asked each poll: run it (`_service`),
    read the connection (`_read`), check idle timeouts, give disconnect notices, or
    connect (`_start_connect`, then `_check_connect` each poll until it ends).

    Where the compiled path runs, poll() is C: it reads a connected client itself and
    calls back as pollnet/poll_owner.py says; `_sync` tells it the current connection."""

    _timeouts: IdleTimeouts

    def poll(self, handler: object, now_ns: int | None = None) -> None:
        self._poll_py(handler, now_ns)

    def _poll_py(self, handler: object, now_ns: int | None) -> None:
        try:
            self._poll_steps(handler, now_ns)
        finally:
            self._sync()

    def _poll_steps(self, handler: object, now_ns: int | None) -> None:
        methods = self._handlers.methods
        if methods is None or methods.handler is not handler:
            methods = self._handlers.get(handler)
        self._service()
        conn = self._conn
        if conn is not None:
            self._read(conn, methods.on_data)
            if self._timeouts.enabled and conn._connected:
                self._timeouts.check(
                    conn, time.monotonic_ns() if now_ns is None else now_ns, methods
                )
            if self._closed:
                self._drain(methods)
            return
        if self._closed:
            self._drain(methods)
        now = time.monotonic_ns() if now_ns is None else now_ns
        if self._connecting is not None:
            self._check_connect(methods, now)
        elif self._connect_due(now):
            self._start_connect(methods, now)

    # ---------------------------------------------------------------- the transport's part

    def _service(self) -> None:
        """Run the transport once, before reading (nothing unless it needs it)."""

    def _read(self, conn: ConnT, on_data: Callable[[ConnectionBase, memoryview], int]) -> None:
        """Hand what the connection received to on_data (when there may be something)."""
        raise NotImplementedError

    def _start_connect(self, methods: HandlerMethods, now_ns: int) -> None:
        raise NotImplementedError

    def _check_connect(self, methods: HandlerMethods, now_ns: int) -> None:
        """A connect in progress: established, failed, timed out, or still going."""
        raise NotImplementedError

    def _sync(self) -> None:
        if self._fast is not None:
            self._fast.conn = self._conn
