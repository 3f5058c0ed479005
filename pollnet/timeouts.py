"""Send/receive idle timeouts, shared by every backend.

Writes and reads only set a flag on the connection (`_sent` / `_received`); the poller
turns flags into timestamps once per poll, so the data path never reads the clock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pollnet.connection import ConnectionBase
    from pollnet.handler import HandlerMethods

NS_PER_SEC = 1_000_000_000


def seconds_to_ns(seconds: float) -> int:
    return round(seconds * NS_PER_SEC)


class IdleTimeouts:
    """`on_send_timeout` / `on_recv_timeout` after a period without traffic (0 = off).

    A timeout fires once per idle period: its clock restarts when it fires.
    """

    __slots__ = ("enabled", "recv_ns", "send_ns")

    def __init__(self, send_timeout_sec: float, recv_timeout_sec: float) -> None:
        self.send_ns = seconds_to_ns(send_timeout_sec)
        self.recv_ns = seconds_to_ns(recv_timeout_sec)
        self.enabled = bool(self.send_ns or self.recv_ns)

    def check(self, conn: ConnectionBase, now_ns: int, methods: HandlerMethods) -> None:
        if conn._sent:
            conn._sent = False
            conn._last_send_ns = now_ns
        elif self.send_ns and now_ns - conn._last_send_ns >= self.send_ns:
            conn._last_send_ns = now_ns
            methods.on_send_timeout(conn)
            if not conn._connected:
                return
        if conn._received:
            conn._received = False
            conn._last_recv_ns = now_ns
        elif self.recv_ns and now_ns - conn._last_recv_ns >= self.recv_ns:
            conn._last_recv_ns = now_ns
            methods.on_recv_timeout(conn)
