"""The echo server loop the benchmark talks to (also `pollnet echo-server`)."""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType

from pollnet.api import PollConnection, PollTcpServer


class Echo:
    """Writes every byte back at once; keeps nothing."""

    __slots__ = ("conns",)

    def __init__(self) -> None:
        self.conns = 0

    def on_tcp_connected(self, conn: PollConnection) -> None:
        self.conns += 1

    def on_tcp_data(self, conn: PollConnection, data: memoryview) -> int:
        conn.write(data)
        return 0


def serve_forever(server: PollTcpServer, should_stop: Callable[[], bool] | None = None) -> Echo:
    """Busy-poll `server` with an echo handler until SIGTERM/SIGINT (or `should_stop()`)."""
    stop = [False]

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop[0] = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    handler = Echo()
    poll = server.poll
    try:
        if should_stop is None:
            while not stop[0]:
                poll(handler)
        else:
            while not stop[0] and not should_stop():
                poll(handler)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        server.close("echo server stopping")
        poll(handler)
    return handler
