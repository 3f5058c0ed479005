"""The TCPDirect look-alike for tests: build it, count its contract violations, and make
loopback configs that load it. Used by tests/tcpdirect and by the behaviour suite."""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import subprocess
from collections.abc import Iterator
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


# ---------------------------------------------------------------- the real library

REAL_LIBRARY_ENV = "POLLNET_TCPDIRECT_LIBRARY"
NO_REAL_LIBRARY = "no real TCPDirect library (set POLLNET_TCPDIRECT_LIBRARY)"
# The real-library rows (tcpdirect:real, td_config's "real") exist only when one is named;
# test_real_library.py is the one test that skips, with the reason, when none is.
REAL_ROWS = bool(os.environ.get(REAL_LIBRARY_ENV))
HUGEPAGES = Path("/proc/sys/vm/nr_hugepages")
REAL_CLIENT_INTERFACE = "b2b1"  # the emulator's back-to-back pair: clients here, servers b2b0
_emu_started: list[str] = []


def real_library() -> Path:
    """The real libonload_zf.so that POLLNET_TCPDIRECT_LIBRARY names, or skip."""
    name = os.environ.get(REAL_LIBRARY_ENV, "")
    if not name:
        pytest.skip(NO_REAL_LIBRARY)
    path = Path(name)
    if not path.is_file():
        pytest.skip(f"{REAL_LIBRARY_ENV}={name!r} is not a file: {NO_REAL_LIBRARY}")
    return path


def _free_hugepages() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("HugePages_Free:"):
            return int(line.split()[1])
    return 0


def _sweep_emulator_shm() -> None:
    for leftover in Path("/dev/shm").glob("zf_emu_*"):
        with contextlib.suppress(OSError):
            leftover.unlink()


@contextlib.contextmanager
def real_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """ZF_ATTR for TCPDirect's emulator (no Solarflare NIC needed): a back-to-back pair
    `b2b0`/`b2b1` on a fresh shared-memory name, in this process. The emulator needs 2 MB
    huge pages; as root this raises vm.nr_hugepages to 512 when there are none free."""
    if _free_hugepages() < 64:
        with contextlib.suppress(OSError):
            HUGEPAGES.write_text("512\n")
        if _free_hugepages() < 64:
            pytest.skip(
                "TCPDirect's emulator needs 2 MB huge pages and fewer than 64 are free "
                "(as root: echo 512 > /proc/sys/vm/nr_hugepages)"
            )
    # One name per test process: the emulator is per process, and a stack a failed test
    # still holds (its traceback) keeps it alive; a fresh name per test stalled connects.
    shm = f"pn{os.getpid()}"
    if not _emu_started:
        _sweep_emulator_shm()  # what killed runs left
        _emu_started.append(shm)
    monkeypatch.setenv("ZF_ATTR", f"emu=1;interface=lo2;n_bufs=1024;emu_shmname={shm}")
    try:
        yield
    finally:
        gc.collect()  # stacks are freed when their client/server is collected


def real_tcpdirect_config(library: Path | str, **sections: dict[str, Any]) -> AnyConfig:
    """A config for the emulator's layout (TCPDirect's own zf_unit B2B tests use it): the
    server on `b2b0` listening on 127.0.0.4, the client on `b2b1` bound to 127.0.0.3 (an
    unbound emulated client sends from 0.0.0.0 and the emulator aborts)."""
    merged: dict[str, dict[str, Any]] = {
        "tcpdirect": {"library": str(library)},
        "client": {
            "interface": REAL_CLIENT_INTERFACE, "local_ip": "127.0.0.3", "server_ip": "127.0.0.4"
        },
        "server": {"interface": "b2b0", "listen_ip": "127.0.0.4"},
    }
    for name, values in sections.items():
        merged.setdefault(name, {}).update(values)
    return loopback_config("tcpdirect", **merged)
