"""Behaviour tests of the pollnet interface, written once and run on every backend.

`backend_config` yields one config per backend: `socket`, `tcpdirect` (our look-alike
library), `tcpdirect:real` when POLLNET_TCPDIRECT_LIBRARY names the real libonload_zf.so
(run in TCPDirect's emulator; tests/tcpdirect/test_real_library.py says when it is
absent), `efvi:sim`, and as root `efvi:af_packet` / `efvi:af_xdp` (tests/behaviour/
efvi_params.py; docs/backends.md lists the explained skips). Tests build their server and
client from it through the public factory, never through a backend's classes.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from netns.netns import Pair as NetnsPair
from netns.netns import available as netns_available
from netns.netns import sweep_stale as netns_sweep_stale
from tcpdirect.shim import (
    REAL_ROWS,
    build_shim,
    real_emulator,
    real_library,
    real_tcpdirect_config,
    tcpdirect_config,
    violations,
)

from behaviour.efvi_params import REFUSING_PEER_TESTS, efvi_config
from pollnet.config import AnyConfig
from pollnet.testing import Pair, PairMaker, RecordingHandler, loopback_config, with_sections

BACKENDS = ["socket", "tcpdirect", *(["tcpdirect:real"] if REAL_ROWS else []), "efvi:sim",
            "efvi:af_packet", "efvi:af_xdp"]


@pytest.fixture(scope="session")
def zf_shim_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tcpdirect runs on the TCPDirect look-alike built from native/tcpdirect_shim."""
    return build_shim(tmp_path_factory.mktemp("zf_shim"))


@pytest.fixture(scope="session")
def efvi_netns() -> Iterator[NetnsPair]:
    """efvi on a real link: a veth pair between two namespaces (root), shared by the
    session; the server's stack runs in `a`, the client's in `b`."""
    ok, why = netns_available()
    if not ok:
        pytest.skip(f"efvi on a real link: {why}")
    netns_sweep_stale()  # namespaces a killed test process left (a pid may come again)
    with NetnsPair(offload=False) as topo:
        yield topo


@pytest.fixture(params=BACKENDS)
def backend_config(request: pytest.FixtureRequest) -> Iterator[AnyConfig]:
    backend: str = request.param
    if backend.startswith("efvi:"):
        yield from efvi_config(request, backend.split(":", 1)[1])
        return
    if backend == "tcpdirect:real":
        if request.node.originalname in REFUSING_PEER_TESTS:
            pytest.skip("tcpdirect:real: in TCPDirect's emulator a port no zocket listens on "
                        "answers nothing (on a NIC the kernel behind the stack refuses), so "
                        "a refusal is a connect timeout there")
        library = real_library()
        with real_emulator(request.getfixturevalue("monkeypatch")):
            yield real_tcpdirect_config(library)
        return
    if backend != "tcpdirect":
        yield loopback_config(backend)
        return
    library: Path = request.getfixturevalue("zf_shim_library")
    before, _ = violations(library)
    yield tcpdirect_config(library)
    gc.collect()  # clients and servers free their stacks when collected
    after, last = violations(library)
    assert after == before, f"{after - before} TCPDirect contract violation(s); last: {last}"


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

