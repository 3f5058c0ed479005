"""scripts/test.sh's stage report: a stage that could not run says SKIPPED with its
reason, never ok; the real-links stage skips that way without root."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _stage(cmd: str) -> str:
    script = f'cd "{ROOT}" && . scripts/stage.sh && stage demo bash -c \'{cmd}\'; ' \
             'echo "failed=${failed[*]:-} skipped=${skipped[*]:-}"'
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    return r.stderr + r.stdout


def test_a_stage_that_skipped_says_so_with_its_reason() -> None:
    out = _stage('echo "no namespaces here" > "$STAGE_SKIP_FILE"; exit 77')
    assert "=== demo: SKIPPED (no namespaces here)" in out
    assert ": ok" not in out
    assert "skipped=demo" in out


def test_ok_and_failed_stages() -> None:
    assert "=== demo: ok" in _stage("true")
    out = _stage("exit 3")
    assert "=== demo: FAILED" in out and "failed=demo" in out


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root to run the script as another user (setpriv)")
def test_real_links_stage_skips_without_root() -> None:
    fd, name = tempfile.mkstemp(prefix="pollnet-skip-")  # in /tmp: the user can reach it
    os.close(fd)
    why = Path(name)
    why.chmod(0o666)
    try:
        r = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
             str(ROOT / "native/tests/links/run.sh")],
            capture_output=True, text=True, env={**os.environ, "STAGE_SKIP_FILE": name},
        )
        assert r.returncode == 77, r.stdout + r.stderr
        assert why.read_text().startswith("not root")
    finally:
        why.unlink()
