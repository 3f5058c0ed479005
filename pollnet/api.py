"""The pollnet interface: what every backend implements and every handler may implement.

This is pollnet's C++ interface (MengRao/pollnet) in Python naming. Application code is
written against these protocols only; `pollnet.create_client` / `create_server` pick the
backend from the config.

Threading model: none. Everything happens inside `poll()`, which never blocks; callbacks
run on the caller's thread, from inside `poll()`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeAlias, runtime_checkable

BytesLike: TypeAlias = bytes | bytearray | memoryview
"""What the write methods accept: any contiguous buffer of bytes (itemsize 1)."""

Peername: TypeAlias = tuple[str, int]


@runtime_checkable
class PollConnection(Protocol):
    """One TCP connection, handed to every per-connection callback.

    After `on_tcp_disconnect(conn)` the object is dead: writes return False / -1 and it
    is never handed out again. `last_error` and `peername` stay readable.
    """

    user_data: Any
    """Free for the application; None when the connection is made."""

    @property
    def is_connected(self) -> bool: ...

    @property
    def last_error(self) -> str:
        """Why the connection closed: the reason, plus the errno text when there is one."""
        ...

    @property
    def peername(self) -> Peername | None:
        """(ip, port) of the peer, None if unknown."""
        ...

    def write(self, data: BytesLike, more: bool = False) -> bool:
        """Send all of `data`, retrying while the socket buffer is full (a busy retry).

        False when the connection is closed or closes on an error. `more=True` says more
        data follows at once (MSG_MORE: the kernel may hold the bytes to coalesce them).
        """
        ...

    def write_some(self, data: BytesLike, more: bool = False) -> int:
        """Send what fits now: bytes accepted, 0 when nothing fits, -1 when not connected."""
        ...

    def write_nonblock(self, data: BytesLike, more: bool = False) -> bool:
        """Send all of `data` now or close the connection (returns False then)."""
        ...

    def close(self, reason: str = "closed by application") -> None:
        """Close; `on_tcp_disconnect` follows on the owner's next `poll()`."""
        ...


class TcpHandler(Protocol):
    """Callbacks a handler may implement; any subset will do (missing ones do nothing,
    a missing `on_tcp_data` consumes everything). pollnet's camelCase names
    (`onTcpData`, `onTcpConnected`, ...) are accepted too. Methods are looked up once,
    when a handler is first passed to `poll()`.
    """

    def on_tcp_connected(self, conn: PollConnection) -> None: ...

    def on_tcp_data(self, conn: PollConnection, data: memoryview) -> int:
        """Consume a prefix of `data`; return how many bytes (the last ones) are left.

        Those bytes are presented again, in front of newly arrived bytes, on the next
        call. `data` is a view into the receive buffer, valid only during this call:
        copy what you keep. A buffer full of unconsumed bytes closes the connection.
        """
        ...

    def on_tcp_disconnect(self, conn: PollConnection) -> None:
        """Exactly once for every connection `on_tcp_connected` announced."""
        ...

    def on_tcp_connect_failed(self) -> None:
        """Client only: one connect attempt failed (refused, timed out, ...)."""
        ...

    def on_send_timeout(self, conn: PollConnection) -> None:
        """Nothing was sent for `send_timeout_sec`; repeats each such period."""
        ...

    def on_recv_timeout(self, conn: PollConnection) -> None:
        """Nothing arrived for `recv_timeout_sec`; repeats each such period."""
        ...


@runtime_checkable
class PollTcpClient(Protocol):
    """A client that (re)connects to one server. It is also the way to reach that
    connection: `write`/`close`/`is_connected`/`last_error` act on the current one."""

    def poll(self, handler: object, now_ns: int | None = None) -> None:
        """Drive connecting, data, timeouts and disconnect notices; never blocks.

        `now_ns` is a monotonic time in nanoseconds; None reads the clock.
        """
        ...

    def allow_reconnect(self) -> None:
        """Permit one more connect attempt now (needed when `conn_retry_sec` is 0)."""
        ...

    @property
    def conn(self) -> PollConnection | None:
        """The current connection, None while not connected."""
        ...

    @property
    def is_connected(self) -> bool: ...

    @property
    def last_error(self) -> str: ...

    def write(self, data: BytesLike, more: bool = False) -> bool: ...

    def write_some(self, data: BytesLike, more: bool = False) -> int: ...

    def write_nonblock(self, data: BytesLike, more: bool = False) -> bool: ...

    def close(self, reason: str = "closed by application") -> None:
        """Close the current connection; auto-reconnect still applies afterwards."""
        ...


@runtime_checkable
class PollTcpServer(Protocol):
    """A listening server holding at most `max_conns` connections; more wait in the
    kernel's backlog, not accepted, until a slot frees."""

    def poll(self, handler: object, now_ns: int | None = None) -> None: ...

    @property
    def address(self) -> Peername:
        """(ip, port) actually listened on (the port is chosen by the OS when 0)."""
        ...

    @property
    def max_conns(self) -> int: ...

    @property
    def conn_count(self) -> int: ...

    def foreach_conn(self, fn: Callable[[PollConnection], object]) -> None:
        """Call `fn(conn)` for every connected connection (it may close them)."""
        ...

    def close(self, reason: str = "server closed") -> None:
        """Stop listening and close every connection (disconnects follow on next poll)."""
        ...

    @property
    def is_closed(self) -> bool: ...

    @property
    def last_error(self) -> str: ...
