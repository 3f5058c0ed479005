"""Behaviour tests of the pollnet interface, written once and run on every backend.

`backend_config` yields one loopback config per backend available here; today that is
only `socket` (issue 5 adds efvi and tcpdirect params). Tests build their server and
client from it through the public factory, never through a backend's classes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pollnet.config import AnyConfig
from pollnet.testing import Pair, PairMaker, RecordingHandler, loopback_config, with_sections

BACKENDS = ["socket"]


@pytest.fixture(params=BACKENDS)
def backend_config(request: pytest.FixtureRequest) -> AnyConfig:
    backend: str = request.param
    return loopback_config(backend)


@pytest.fixture
def make_pair(backend_config: AnyConfig) -> Iterator[PairMaker]:
    """`make_pair(client={...}, server={...}, server_handler=..., client_handler=...)`:
    a connected pair on this backend, closed at teardown."""
    pairs: list[Pair] = []

    def make(
        server_handler: RecordingHandler | None = None,
        client_handler: RecordingHandler | None = None,
        connect: bool = True,
        **sections: dict[str, Any],
    ) -> Pair:
        cfg = with_sections(backend_config, **sections) if sections else backend_config
        pair = Pair(cfg, server_handler, client_handler, connect=connect)
        pairs.append(pair)
        return pair

    yield make
    for pair in pairs:
        pair.close()

