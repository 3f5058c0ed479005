"""The efvi link against real Onload headers, and an optional link that does not compile.

`link_efvi.c` must compile with -Werror against the ef_vi headers of every Onload release
docs/efvi-link.md names (ONLOAD_HOME: an Onload source tree or install). A link that does
not compile must never fail the install: the build leaves it out and `pollnet info` says
why, with the compiler's first error line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "native"))
import build_links  # noqa: E402  (native/ is not a package)


def _onload_include() -> Path:
    home = os.environ.get("ONLOAD_HOME", "")
    for inc in (Path(home) / "src" / "include", Path(home) / "include"):
        if home and (inc / "etherfabric" / "ef_vi.h").exists():
            return inc
    pytest.skip("no Onload tree (set ONLOAD_HOME)")


def test_link_efvi_compiles_against_real_onload_headers() -> None:
    inc = _onload_include()
    assert build_links.efvi_compile_error([str(inc)]) == ""


def test_link_efvi_compiles_against_the_look_alike() -> None:
    shim = ROOT / "native" / "efvi_shim"
    assert build_links.efvi_compile_error([str(shim / "include"), str(shim)]) == ""


def _broken_onload(tmp: Path) -> Path:
    """An 'Onload' whose ef_vi header does not compile, with a libciul to link."""
    ef = tmp / "src" / "include" / "etherfabric"
    ef.mkdir(parents=True)
    for name in ("base.h", "capabilities.h", "ef_vi.h", "memreg.h", "pd.h", "vi.h"):
        (ef / name).write_text("#error this ef_vi header is broken\n")
    lib = tmp / "lib"
    lib.mkdir()
    (lib / "libciul1.a").write_bytes(b"!<arch>\n")
    return tmp


def test_a_link_that_does_not_compile_leaves_the_build_working(tmp_path: Path) -> None:
    home = _broken_onload(tmp_path / "onload")
    out = tmp_path / "module"
    env = {**os.environ, "ONLOAD_HOME": str(home)}
    env.pop("POLLNET_EFVI_SHIM", None)
    env.pop("POLLNET_NO_EFVI", None)
    build = subprocess.run([sys.executable, str(ROOT / "native" / "build_ffi.py"), str(out)],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    assert "efvi link skipped: link_efvi.c does not compile" in build.stderr
    so = next((out / "pollnet").glob("_pncore*.so"))
    info = subprocess.run(
        [sys.executable, "-c", "from pollnet.probe import efvi_build_info as f; print(f())"],
        capture_output=True, text=True, env={**env, "POLLNET_CORE_MODULE": str(so)},
        timeout=60,
    )
    text = info.stdout.strip()
    assert text.startswith("not built: link_efvi.c did not compile against the Onload "
                           "headers"), info.stdout + info.stderr
    assert "this ef_vi header is broken" in text
