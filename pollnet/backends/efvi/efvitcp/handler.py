"""The efvitcp-level event handler: which methods `poll()` calls, and their resolution.

A handler is any object; it implements the subset of these methods it cares about
(subclassing `EfviHandler` is optional and only documents them). efvitcp's camelCase
names (`onData`, `onConnectionEstablished`, `allowNewConnection`, ...) work too.
Methods are looked up once per handler type, so adding methods to an instance after its
first poll has no effect.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from pollnet.backends.efvi.efvitcp.connection import Connection


class EfviHandler:
    """The events, as efvitcp names them. Every method is optional; the defaults here
    are never called (poll() skips events whose method is missing or inherited from
    this class)."""

    def on_connection_refused(self, conn: Connection) -> None:
        """connect() got a RST. The connection is closed."""

    def on_connection_established(self, conn: Connection) -> None:
        """The handshake completed (client: connect(); server: a new connection)."""

    def on_connection_timeout(self, conn: Connection) -> None:
        """SYN retries, data retries or next-hop resolution ran out. The connection is
        closed; `conn.is_established` tells whether the handshake had completed, and
        `conn.end_reason` which limit ran out (e.g. "peer's window stayed zero
        (zero_window_timeout_ms)")."""

    def on_connection_reset(self, conn: Connection) -> None:
        """The peer sent a valid RST. The connection is closed."""

    def on_connection_closed(self, conn: Connection) -> None:
        """The four-way close completed (the connection went to TIME_WAIT)."""

    def on_fin(self, conn: Connection, data: memoryview) -> int:
        """The peer will send no more; `data` holds the last unconsumed bytes (maybe
        none): bytes that arrived with the FIN are given to on_data first (efvitcp's
        order) and `data` is what it left. Return how many of its last bytes stay
        unconsumed."""
        return 0

    def on_more_sendable(self, conn: Connection) -> None:
        """Acknowledged data freed send buffers: `conn.sendable()` grew."""

    def on_user_timeout(self, conn: Connection, timer_id: int) -> None:
        """A timer set with `conn.set_user_timer(timer_id, ms)` expired."""

    def on_data(self, conn: Connection, data: memoryview) -> int:
        """In-order bytes arrived. `data` is a zero-copy view of the core's receive
        buffer, valid only during this call (copy what you keep: `bytes(data[:n])`); it
        starts with the bytes left unconsumed last time. Return how many of its LAST
        bytes you did not consume: they come back first in the next on_data."""
        return 0

    def allow_new_connection(self, ip: str, port: int) -> bool:
        """Server: accept a connection from ip:port? (absent: accept all)."""
        return True


_METHODS = (
    "on_data",
    "on_fin",
    "on_more_sendable",
    "on_connection_established",
    "on_connection_closed",
    "on_connection_reset",
    "on_connection_timeout",
    "on_connection_refused",
    "on_user_timeout",
    "allow_new_connection",
)

# efvitcp's own (camelCase) names, used when the snake_case one is absent.
_CAMEL = {name: name.split("_")[0] + "".join(w.title() for w in name.split("_")[1:])
          for name in _METHODS}

Method = Callable[..., Any] | None


class Bound(NamedTuple):
    """A handler's methods bound once (None where it does not implement one)."""

    on_data: Method
    on_fin: Method
    on_more_sendable: Method
    on_connection_established: Method
    on_connection_closed: Method
    on_connection_reset: Method
    on_connection_timeout: Method
    on_connection_refused: Method
    on_user_timeout: Method
    allow_new_connection: Method


_BY_TYPE: dict[type, tuple[Any, ...]] = {}


def bind(handler: object) -> Bound:
    """Resolve `handler`'s event methods: the per-type lookup is cached; binding to the
    instance happens once per handler object (poll() keeps the result)."""
    kind = type(handler)
    funcs = _BY_TYPE.get(kind)
    if funcs is None:
        resolved = []
        for name in _METHODS:
            f = getattr(kind, name, None)
            if f is not None and f is getattr(EfviHandler, name):
                f = None  # inherited default: skip the event instead of calling a no-op
            attr = name
            if f is None and getattr(kind, _CAMEL[name], None) is not None:
                attr = _CAMEL[name]
                f = getattr(kind, attr)
            resolved.append((attr, f))
        funcs = tuple(resolved)
        _BY_TYPE[kind] = funcs
    bound: list[Method] = []
    for attr, f in funcs:
        # Bind through getattr so staticmethods, classmethods and callables work.
        bound.append(getattr(handler, attr) if f is not None else None)
    return Bound(*bound)
