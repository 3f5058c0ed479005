"""`poll_until`: busy-poll some pollers until a condition holds, within bounds."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol, TypeAlias


class Pollable(Protocol):
    def poll(self) -> object: ...


PollTarget: TypeAlias = Pollable | tuple[Any, object] | Callable[[], object]


def _as_call(target: PollTarget) -> Callable[[], object]:
    if isinstance(target, tuple):
        poller, handler = target
        poll = poller.poll

        def call() -> object:
            return poll(handler)

        return call
    poll_method = getattr(target, "poll", None)
    if poll_method is not None:
        return poll_method  # type: ignore[no-any-return]
    if callable(target):
        return target
    raise TypeError(f"cannot poll {target!r}: give obj.poll(), (poller, handler) or a callable")


def poll_until(
    cond: Callable[[], object],
    *targets: PollTarget,
    max_polls: int | None = None,
    timeout: float = 5.0,
) -> bool:
    """Poll every target in turn until `cond()` is true; give up after `max_polls` rounds
    or `timeout` seconds, whichever comes first. Returns `bool(cond())` at the end, so
    tests say `assert poll_until(...)` and never assert on elapsed time.

    A target is an object with a no-argument `poll()`, a `(client_or_server, handler)`
    pair, or a plain callable.
    """
    calls = [_as_call(t) for t in targets]
    deadline = time.monotonic() + timeout
    polls = 0
    while not cond():
        if max_polls is not None and polls >= max_polls:
            break
        for call in calls:
            call()
        polls += 1
        # The clock is read every 64 rounds: cheap, and still bounded.
        if polls & 63 == 0 and time.monotonic() >= deadline:
            break
    return bool(cond())


def poll_for(count: int, *targets: PollTarget) -> None:
    """Poll every target exactly `count` rounds (to show something does NOT happen)."""
    calls = [_as_call(t) for t in targets]
    for _ in range(count):
        for call in calls:
            call()
