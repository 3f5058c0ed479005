"""The receive buffer behind `on_tcp_data`'s remaining-bytes contract, shared by backends
that receive into user space (socket, tcpdirect).

One preallocated bytearray; `room()` is where the transport writes (recv_into), `fill(n)`
returns the view to hand to the handler, `keep(remaining)` keeps the last `remaining`
bytes for the next call. Unconsumed bytes move to the front only when they sit in the
back half (or the end is reached), as pollnet does, so slow consumers do not cost a copy
per call.
"""

from __future__ import annotations


def buffer_full_reason(size: int, raise_what: str = "recv_buf_size") -> str:
    """The close reason when `on_tcp_data` leaves a full buffer unconsumed."""
    return (
        f"recv buffer full: {size} bytes unconsumed by on_tcp_data "
        f"(raise {raise_what} or consume more)"
    )


class RecvBuffer:
    __slots__ = ("_buf", "_half", "head", "size", "tail", "view")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("recv buffer size must be at least 1 byte")
        self.size = size
        self._buf = bytearray(size)
        self.view = memoryview(self._buf)
        self._half = size // 2
        self.head = 0
        self.tail = 0

    def reset(self) -> None:
        self.head = self.tail = 0

    @property
    def pending(self) -> int:
        """Unconsumed bytes held for the next call."""
        return self.tail - self.head

    def room(self) -> memoryview:
        """Where the next bytes go; the whole buffer (no new view) when it is empty."""
        tail = self.tail
        return self.view if tail == 0 else self.view[tail:]

    def fill(self, n: int) -> memoryview:
        """`n` bytes were written into `room()`: the bytes to present (kept + new)."""
        tail = self.tail = self.tail + n
        head = self.head
        if head == 0 and tail == self.size:
            return self.view
        return self.view[head:tail]

    def keep(self, remaining: int) -> bool:
        """Keep the last `remaining` bytes presented; False when they fill the buffer."""
        if not remaining or remaining < 0:
            self.head = self.tail = 0
            return True
        tail = self.tail
        available = tail - self.head
        if remaining > available:
            remaining = available
        if remaining >= self.size:
            self.head = 0
            return False
        head = tail - remaining
        if head >= self._half or tail == self.size:
            self.view[:remaining] = self.view[head:tail]
            head = 0
            self.tail = remaining
        self.head = head
        return True
