"""`pollnet echo-server`'s loop: echoes every byte, and answers sockperf clients
(`sockperf ping-pong --tcp`) the sockperf way (see pollnet.bench.sockperf)."""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType

from pollnet.api import PollTcpServer
from pollnet.bench.handlers import Echo


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
