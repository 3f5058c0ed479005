"""The TCPDirect look-alike for tests: build it, count its contract violations, and make
loopback configs that load it. Used by tests/tcpdirect and by the behaviour suite."""

from __future__ import annotations

import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import cffi
import pytest

from pollnet.config import AnyConfig
from pollnet.testing import loopback_config

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


@cache
def _counters(library: str) -> tuple[Any, Any]:
    ffi = cffi.FFI()
    ffi.cdef("int zf_shim_violations(void); const char* zf_shim_last_violation(void);")
    return ffi, ffi.dlopen(library)  # the same loaded library the backend uses


def violations(library: Path) -> tuple[int, str]:
    """(count so far, last message) of the shim's TCPDirect contract violations."""
    ffi, lib = _counters(str(library))
    return lib.zf_shim_violations(), ffi.string(lib.zf_shim_last_violation()).decode()


def tcpdirect_config(library: Path | str, **sections: dict[str, Any]) -> AnyConfig:
    """`loopback_config` for the tcpdirect backend: the stacks on `lo`, `library` loaded."""
    merged: dict[str, dict[str, Any]] = {
        "tcpdirect": {"library": str(library)},
        "client": {"interface": "lo"},
        "server": {"interface": "lo"},
    }
    for name, values in sections.items():
        merged.setdefault(name, {}).update(values)
    return loopback_config("tcpdirect", **merged)
