"""Fixtures for tests that need private network namespaces (root).

`netns_pair`        a <-veth-> b, kernel offloads on (as veth has them by default)
`netns_pair_plain`  the same with TSO/GSO/TX checksum offload off on both ends
`netns_bridged`     a factory: netns_bridged(loss=..., seed=...) -> Bridged, closed after
Each skips, naming the reason, where namespaces cannot be made (not root, no `ip`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .netns import Bridged, Pair, available, sweep_stale

_state: dict[str, Any] = {}


def require_netns() -> None:
    if "ok" not in _state:
        ok, why = available()
        _state["ok"], _state["why"] = ok, why
        if ok:
            sweep_stale()
    if not _state["ok"]:
        pytest.skip(_state["why"])


@pytest.fixture
def netns_pair() -> Iterator[Pair]:
    require_netns()
    with Pair(offload=True) as t:
        yield t


@pytest.fixture
def netns_pair_plain() -> Iterator[Pair]:
    require_netns()
    with Pair(offload=False) as t:
        yield t


@pytest.fixture
def netns_pair_queues() -> Iterator[Callable[[int], Pair]]:
    """`netns_pair_queues(n)`: a pair whose veth has n RX and n TX queues at each end."""
    require_netns()
    made: list[Pair] = []

    def make(queues: int) -> Pair:
        t = Pair(offload=False, queues=queues)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


@pytest.fixture
def netns_bridged() -> Iterator[Callable[..., Bridged]]:
    require_netns()
    made: list[Bridged] = []

    def make(**kw: Any) -> Bridged:
        t = Bridged(**kw)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()
