"""Fixtures for the tcpdirect backend: the look-alike library, built once per session.

`native/tcpdirect_shim/build.sh` compiles `libzf_shim.so` (the TCPDirect API subset over
kernel sockets) into a temporary folder; configs point `tcpdirect.library` at it. After
every test that uses it, the shim's count of TCPDirect contract violations must not have
grown.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from pollnet.config import AnyConfig
from tcpdirect.shim import (
    REAL_ROWS,
    build_shim,
    real_emulator,
    real_library,
    real_tcpdirect_config,
    tcpdirect_config,
    violations,
)


@pytest.fixture(scope="session")
def shim_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_shim(tmp_path_factory.mktemp("zf_shim"))


@pytest.fixture(autouse=True)
def no_contract_violations(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that broke a TCPDirect contract the shim checks (see zf_shim.h)."""
    callspec = getattr(request.node, "callspec", None)
    on_shim = callspec is not None and callspec.params.get("td_config") == "shim"
    if "shim_library" not in request.fixturenames and not on_shim:
        yield
        return
    library: Path = request.getfixturevalue("shim_library")
    before, _ = violations(library)
    yield
    gc.collect()  # clients and servers free their stacks when collected
    after, last = violations(library)
    assert after == before, f"{after - before} TCPDirect contract violation(s); last: {last}"


@pytest.fixture(params=["shim", "real"] if REAL_ROWS else ["shim"])
def td_config(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AnyConfig]:
    """The tests taking `td_config` run twice: on the look-alike, and on the real library in
    TCPDirect's emulator when POLLNET_TCPDIRECT_LIBRARY names one (skipped otherwise)."""
    if request.param == "shim":
        yield tcpdirect_config(request.getfixturevalue("shim_library"))
        return
    library = real_library()
    with real_emulator(monkeypatch):
        yield real_tcpdirect_config(library)
