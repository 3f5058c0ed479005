"""The benchmark's handlers, for both API levels (pollnet's `on_tcp_*` and efvitcp's
`on_*`). None allocates per message."""

from __future__ import annotations

from typing import Any

from pollnet.bench import sockperf


class Counter:
    """Client side: counts bytes received; a lost connection ends any wait at once."""

    __slots__ = ("conns", "established", "got", "lost")

    def __init__(self) -> None:
        self.got = 0
        self.lost = ""
        self.established = 0
        self.conns: list[Any] = []

    # pollnet level
    def on_tcp_data(self, conn: Any, data: memoryview) -> int:
        self.got += len(data)
        return 0

    def on_tcp_connected(self, conn: Any) -> None:
        self.established += 1
        self.conns.append(conn)

    def on_tcp_disconnect(self, conn: Any) -> None:
        self._lost(conn, str(getattr(conn, "last_error", "")) or "disconnected")

    def on_tcp_connect_failed(self) -> None:
        self.lost = self.lost or "connect failed"

    # efvitcp level
    def on_data(self, conn: Any, data: memoryview) -> int:
        self.got += len(data)
        return 0

    def on_connection_established(self, conn: Any) -> None:
        self.established += 1
        self.conns.append(conn)

    def on_connection_refused(self, conn: Any) -> None:
        self._lost(conn, "connection refused")

    def on_connection_reset(self, conn: Any) -> None:
        self._lost(conn, "connection reset")

    def on_connection_timeout(self, conn: Any) -> None:
        self._lost(conn, "connection timed out")

    def on_connection_closed(self, conn: Any) -> None:
        self._lost(conn, "connection closed")

    def on_fin(self, conn: Any, data: memoryview) -> int:
        self._lost(conn, "peer sent FIN")
        return 0

    def _lost(self, conn: Any, why: str) -> None:
        self.lost = why
        self.got = 1 << 62
        if conn in self.conns:
            self.conns.remove(conn)


class Echo:
    """Server side: writes every byte back. A connection that opens with a sockperf
    header is answered the sockperf way (replies to pong requests only)."""

    __slots__ = ("conns", "sockperf")

    def __init__(self) -> None:
        self.conns = 0
        self.sockperf: dict[int, sockperf.Responder | None] = {}

    def _reply(self, conn: Any, data: memoryview, write: Any) -> int:
        key = id(conn)
        resp = self.sockperf.get(key, False)
        if resp is False:
            # Decided on the first bytes, at once: an echo server never waits. A sockperf
            # client writes whole messages (>= 14 bytes), so its first bytes carry a full
            # header; fewer than that is a plain peer (say `nc` sending "hi").
            resp = sockperf.Responder() if sockperf.looks_like_sockperf(data) else None
            self.sockperf[key] = resp
        if resp is None:
            write(data)
            return 0
        assert isinstance(resp, sockperf.Responder)
        out, left = resp.feed(data)
        if out is not None:
            write(out)
        return left

    # pollnet level
    def on_tcp_connected(self, conn: Any) -> None:
        self.conns += 1
        self.sockperf.pop(id(conn), None)

    def on_tcp_data(self, conn: Any, data: memoryview) -> int:
        return self._reply(conn, data, conn.write)

    # efvitcp level
    def on_connection_established(self, conn: Any) -> None:
        self.conns += 1
        self.sockperf.pop(id(conn), None)

    def on_data(self, conn: Any, data: memoryview) -> int:
        return self._reply(conn, data, conn.send)

    def on_fin(self, conn: Any, data: memoryview) -> int:
        conn.send_fin()
        return 0


class FastEcho:
    """The plain echo without sockperf detection (the benchmark's own peer)."""

    __slots__ = ("conns",)

    def __init__(self) -> None:
        self.conns = 0

    def on_tcp_connected(self, conn: Any) -> None:
        self.conns += 1

    def on_tcp_data(self, conn: Any, data: memoryview) -> int:
        conn.write(data)
        return 0

    def on_connection_established(self, conn: Any) -> None:
        self.conns += 1

    def on_data(self, conn: Any, data: memoryview) -> int:
        conn.send(data)
        return 0

    def on_fin(self, conn: Any, data: memoryview) -> int:
        conn.send_fin()
        return 0


class Sink:
    """Throughput's server: takes every byte, answers nothing (FIN with FIN)."""

    __slots__ = ()

    def on_tcp_data(self, conn: Any, data: memoryview) -> int:
        return 0

    def on_data(self, conn: Any, data: memoryview) -> int:
        return 0

    def on_fin(self, conn: Any, data: memoryview) -> int:
        conn.send_fin()
        return 0
