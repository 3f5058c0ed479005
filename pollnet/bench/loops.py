"""The measuring loops. Each round trip: read the clock, send, poll until the echo is
back, read the clock, store the difference in a preallocated array. Nothing allocates
per message (the message is one bytes object, the samples one array('q')).

`send(msg)` and `poll(handler)` are the backend's own bound methods; `poll2` is a second
stack polled in the same thread (the sim link's server).
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pollnet.errors import PollnetError

Send = Callable[[Any], Any]
Poll = Callable[[Any], Any]
Progress = Callable[[int, int], None]


class LoopError(PollnetError):
    """The peer went away in the middle of a run."""


@dataclass
class LoopResult:
    done: int  # samples written
    cold_ns: int  # the very first round trip
    start_ns: int  # first measured send
    end_ns: int  # last measured receive
    warmup_done: int  # round trips before the first sample


def pingpong(
    send: Send,
    poll: Poll,
    handler: Any,
    msg: bytes | bytearray,
    samples: array[int],
    *,
    warmup: int = 0,
    warmup_ns: int = 0,
    duration_ns: int = 0,
    interval_ns: int = 0,
    poll2: Poll | None = None,
    handler2: Any = None,
    progress: Progress | None = None,
) -> LoopResult:
    """Round trips until `samples` is full or `duration_ns` of measuring passed."""
    clock = time.perf_counter_ns
    size = len(msg)
    count = len(samples)
    pace = _Pacer(interval_ns, clock, poll, handler)

    # Warm-up: count- and/or time-based; the first round trip is the cold one.
    cold = -1
    done_warm = 0
    warm_until = clock() + warmup_ns if warmup_ns else 0
    while done_warm < warmup or (warm_until and clock() < warm_until):
        pace.wait()
        rtt = _one(send, poll, handler, msg, size, clock, poll2, handler2)
        if cold < 0:
            cold = rtt
        done_warm += 1

    step = max(1, min(count // 50, 20_000))
    i = 0
    start = clock()
    stop_at = start + duration_ns if duration_ns else 0
    end = start
    got_attr = handler  # the handler's `got` is reset and read directly below
    while i < count:
        chunk_end = min(count, i + step)
        if poll2 is None and not interval_ns:
            # The common case, as tight as Python allows.
            while i < chunk_end:
                got_attr.got = 0
                t0 = clock()
                send(msg)
                while got_attr.got < size:
                    poll(handler)
                end = clock()
                samples[i] = end - t0
                i += 1
        else:
            while i < chunk_end:
                pace.wait()
                t0 = clock()
                rtt = _one(send, poll, handler, msg, size, clock, poll2, handler2, t0)
                end = t0 + rtt
                samples[i] = rtt
                i += 1
        if handler.lost:
            raise LoopError(f"lost the peer after {done_warm + i} round trips: {handler.lost}")
        if cold < 0:
            cold = samples[0]
        if progress is not None:
            progress(i, count)
        if stop_at and end >= stop_at:
            break
    return LoopResult(i, cold, start, end, done_warm)


def _one(send: Send, poll: Poll, handler: Any, msg: bytes | bytearray, size: int,
         clock: Callable[[], int], poll2: Poll | None, handler2: Any, t0: int = 0) -> int:
    handler.got = 0
    t0 = t0 or clock()
    send(msg)
    if poll2 is None:
        while handler.got < size:
            poll(handler)
    else:
        while handler.got < size:
            poll2(handler2)
            poll(handler)
    if handler.lost:
        raise LoopError(f"lost the peer: {handler.lost}")
    return clock() - t0


class _Pacer:
    """--mps: start one round trip every interval, polling while early."""

    __slots__ = ("clock", "handler", "interval", "next", "poll")

    def __init__(self, interval_ns: int, clock: Callable[[], int], poll: Poll,
                 handler: Any) -> None:
        self.interval = interval_ns
        self.clock = clock
        self.poll = poll
        self.handler = handler
        self.next = 0

    def wait(self) -> None:
        if not self.interval:
            return
        now = self.clock()
        if not self.next:
            self.next = now
        while now < self.next:
            self.poll(self.handler)
            now = self.clock()
        self.next += self.interval
