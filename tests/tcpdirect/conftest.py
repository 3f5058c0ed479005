"""Fixtures for the tcpdirect backend: the look-alike library, built once per session.

`native/tcpdirect_shim/build.sh` compiles `libzf_shim.so` (the TCPDirect API subset over
kernel sockets) into a temporary folder; configs point `tcpdirect.library` at it. After
every test the shim's count of TCPDirect contract violations must not have grown.
"""

from __future__ import annotations

import gc
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cffi
import pytest

from pollnet.config import AnyConfig, config_from_dict
from pollnet.testing import free_port, with_sections

ROOT = Path(__file__).resolve().parents[2]
SHIM_DIR = ROOT / "native" / "tcpdirect_shim"


def build_shim(out_dir: Path) -> Path:
    """Compile libzf_shim.so into `out_dir` with the folder's own build script."""
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler (cc/gcc): cannot build the TCPDirect look-alike")
    subprocess.run(
        ["sh", str(SHIM_DIR / "build.sh"), str(out_dir)],
        check=True,
        capture_output=True,
        text=True,
    )
    return out_dir / "libzf_shim.so"


@pytest.fixture(scope="session")
def shim_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_shim(tmp_path_factory.mktemp("zf_shim"))


@pytest.fixture(scope="session")
def shim_counters(shim_library: Path) -> Any:
    """The shim's test-only entry points (zf_shim.h), from the same loaded library."""
    ffi = cffi.FFI()
    ffi.cdef("int zf_shim_violations(void); const char* zf_shim_last_violation(void);")
    lib = ffi.dlopen(str(shim_library))
    return ffi, lib


@pytest.fixture(autouse=True)
def no_contract_violations(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that broke a TCPDirect contract the shim checks (see zf_shim.h)."""
    if "shim_library" not in request.fixturenames:
        yield
        return
    ffi, lib = request.getfixturevalue("shim_counters")
    before = lib.zf_shim_violations()
    yield
    gc.collect()  # clients and servers free their stacks when collected
    after = lib.zf_shim_violations()
    last = ffi.string(lib.zf_shim_last_violation()).decode()
    assert after == before, f"{after - before} TCPDirect contract violation(s); last: {last}"


def tcpdirect_config(library: Path | str, **sections: dict[str, Any]) -> AnyConfig:
    """A tcpdirect config on loopback (`interface = "lo"`), server port free a moment ago."""
    port = free_port()
    data: dict[str, Any] = {
        "backend": "tcpdirect",
        "tcpdirect": {"library": str(library)},
        "client": {
            "interface": "lo",
            "server_ip": "127.0.0.1",
            "server_port": port,
            "conn_retry_sec": 0.01,
        },
        "server": {"interface": "lo", "listen_ip": "127.0.0.1", "port": port},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return config_from_dict(data)


@pytest.fixture
def td_config(shim_library: Path) -> AnyConfig:
    return tcpdirect_config(shim_library)


__all__ = ["build_shim", "tcpdirect_config", "with_sections"]
