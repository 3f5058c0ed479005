"""Resolve a handler's callbacks once, so dispatch is a plain call of a cached bound method.

Shared by every backend: a poller keeps the `HandlerMethods` of the last handler it was
given and rebinds only when `poll()` receives a different handler object.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, NamedTuple

from pollnet.errors import HandlerError

# pollnet-Python name first, pollnet C++ (camelCase) name second: the first one found wins.
CALLBACK_NAMES: dict[str, tuple[str, str]] = {
    "on_connected": ("on_tcp_connected", "onTcpConnected"),
    "on_data": ("on_tcp_data", "onTcpData"),
    "on_disconnect": ("on_tcp_disconnect", "onTcpDisconnect"),
    "on_connect_failed": ("on_tcp_connect_failed", "onTcpConnectFailed"),
    "on_send_timeout": ("on_send_timeout", "onSendTimeout"),
    "on_recv_timeout": ("on_recv_timeout", "onRecvTimeout"),
}


def _ignore_conn(conn: Any) -> None:
    return None


def _ignore(*_args: Any) -> None:
    return None


def _consume_all(conn: Any, data: memoryview) -> int:
    return 0


class HandlerMethods(NamedTuple):
    """A handler's callbacks, bound; defaults stand in for the ones it lacks."""

    handler: object
    on_connected: Callable[[Any], object]
    on_data: Callable[[Any, memoryview], int]
    on_disconnect: Callable[[Any], object]
    on_connect_failed: Callable[[], object]
    on_send_timeout: Callable[[Any], object]
    on_recv_timeout: Callable[[Any], object]


_DEFAULTS: dict[str, Callable[..., Any]] = {
    "on_connected": _ignore_conn,
    "on_data": _consume_all,
    "on_disconnect": _ignore_conn,
    "on_connect_failed": _ignore,
    "on_send_timeout": _ignore_conn,
    "on_recv_timeout": _ignore_conn,
}


def bind_handler(handler: object) -> HandlerMethods:
    """Look up each callback on `handler` (either naming), bound, with defaults."""
    found: dict[str, Callable[..., Any]] = {}
    for slot, names in CALLBACK_NAMES.items():
        method = None
        for name in names:
            method = getattr(handler, name, None)
            if method is not None:
                break
        if method is not None and not callable(method):
            raise TypeError(f"handler {type(handler).__name__}.{name} is not callable")
        found[slot] = method if method is not None else _DEFAULTS[slot]
    return HandlerMethods(handler=handler, **found)


class HandlerCache:
    """One poller's binding: `get(handler)` is an identity check after the first call."""

    __slots__ = ("methods",)

    def __init__(self) -> None:
        self.methods: HandlerMethods | None = None

    def get(self, handler: object) -> HandlerMethods:
        methods = self.methods
        if methods is None or methods.handler is not handler:
            methods = self.methods = bind_handler(handler)
        return methods


def checked_remaining(result: object, size: int, method: str = "on_tcp_data") -> int:
    """What a data handler's return means, off the fast path (callers first test
    `type(r) is int and 0 <= r <= size` themselves): None is 0, any other non-int
    (bool included) or an int outside 0..size is a HandlerError."""
    if result is None:
        return 0
    if type(result) is not bool:
        try:
            # int subclasses and numpy integers count; anything else is refused below
            value = operator.index(result)  # type: ignore[arg-type]
        except TypeError:
            value = -1
        if 0 <= value <= size:
            return value
    raise HandlerError(
        f"{method} returned {result!r}: it must return how many of the {size} bytes it was "
        f"given are left unconsumed, an int in 0..{size} (None means 0); the bytes are "
        "presented again on the next poll"
    )
