"""The examples run unchanged on every backend: only the config file differs.

Each runs as its own process (as a user would run it), bounded by a timeout; tcpdirect
runs on our TCPDirect look-alike through POLLNET_TCPDIRECT__LIBRARY.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tcpdirect.shim import build_shim

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CONFIGS = ["socket", "efvi-sim", "tcpdirect"]


@pytest.fixture(scope="module")
def shim_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_shim(tmp_path_factory.mktemp("zf_shim_examples"))


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("example", ["echo.py", "messages.py"])
def test_example_runs_on_backend(example: str, config: str, request: pytest.FixtureRequest
                                 ) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLLNET_")}
    if config == "tcpdirect":
        env["POLLNET_TCPDIRECT__LIBRARY"] = str(request.getfixturevalue("shim_library"))
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / example), str(EXAMPLES / "configs" / f"{config}.toml")],
        capture_output=True, text=True, timeout=120, env=env, cwd=EXAMPLES,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " OK on " in result.stdout


@pytest.mark.parametrize("example", ["echo.py", "messages.py"])
def test_an_unavailable_backend_is_one_clear_line(example: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLLNET_")}
    env["POLLNET_TCPDIRECT__LIBRARY"] = str(tmp_path / "no-such-libonload_zf.so")
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / example), str(EXAMPLES / "configs" / "tcpdirect.toml")],
        capture_output=True, text=True, timeout=120, env=env, cwd=EXAMPLES,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"{example}: backend 'tcpdirect' is not available: cannot load"), result.stderr
