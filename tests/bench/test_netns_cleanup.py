"""The default bench makes a private namespace pair as root; however it ends (Ctrl-C,
SIGTERM, SIGKILL) no namespace, veth or worker process of it remains."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from pollnet.bench import netns

pytestmark = pytest.mark.netns


def _require() -> None:
    ok, why = netns.available()
    if not ok:
        pytest.skip(why)


def _ours(pid: int) -> list[str]:
    return [n for n in netns.list_ours() if n.startswith(f"{netns.PREFIX}{pid}n")]


def _start_long_bench() -> subprocess.Popen[str]:
    # Long enough to be interrupted mid-run, bounded if the test itself goes wrong.
    cmd = [sys.executable, "-m", "pollnet", "bench", "--net", "netns", "--backends", "socket",
           "-n", "5000000", "-t", "60", "--no-progress"]
    # The default SIGINT disposition, as a terminal gives it: a test run started in the
    # background (`cmd &` in a script) ignores SIGINT, and exec keeps that for the bench.
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for_namespaces(proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if len(_ours(proc.pid)) == 2 and _workers_of(proc.pid):
            time.sleep(0.5)  # mid-run: the client is measuring
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    pytest.fail("the bench never created its namespaces")


def _workers_of(pid: int) -> list[int]:
    """Worker processes whose parent is `pid` (read from /proc: no subprocess per check)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if b"pollnet.bench.worker" not in f.read():
                    continue
            with open(f"/proc/{entry}/status") as f:
                ppid = next(int(x.split()[1]) for x in f if x.startswith("PPid:"))
        except (OSError, StopIteration, ValueError):
            continue
        if ppid == pid:
            out.append(int(entry))
    return out


def _gone(pids: list[int], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(os.path.exists(f"/proc/{p}") for p in pids):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_bench_leaves_nothing(sig: signal.Signals) -> None:
    _require()
    proc = _start_long_bench()
    try:
        _wait_for_namespaces(proc)
        workers = _workers_of(proc.pid)
        proc.send_signal(sig)
        proc.communicate(timeout=30)
        assert proc.returncode != 0
        assert _ours(proc.pid) == []
        assert _gone(workers), "a worker outlived the bench"
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        assert "pnb0" not in links and "pnb1" not in links  # nothing leaked to the host
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_killed_bench_is_swept_by_the_next() -> None:
    """SIGKILL runs no handler: the namespaces stay until the next bench sweeps them, and
    the workers die with their parent (PR_SET_PDEATHSIG)."""
    _require()
    proc = _start_long_bench()
    try:
        _wait_for_namespaces(proc)
        workers = _workers_of(proc.pid)
        proc.kill()
        proc.communicate(timeout=30)
        assert _gone(workers), "a worker outlived the killed bench"
        # Left behind (no handler runs on SIGKILL) until a bench sweeps; a bench of a
        # concurrent test session may sweep them first, which is the point too.
        netns.sweep_stale()
        assert _ours(proc.pid) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        for name in _ours(proc.pid):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_sweep_removes_namespaces_of_dead_processes_only() -> None:
    _require()
    dead = 4_000_000  # above pid_max: no such process
    stale = f"{netns.PREFIX}{dead}n1a"
    mine = f"{netns.PREFIX}{os.getpid()}n99a"
    for name in (stale, mine):
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        swept = netns.sweep_stale()
        names = netns.list_ours()
        assert stale in swept and stale not in names
        assert mine in names  # a live process's namespaces are its own business
    finally:
        for name in (stale, mine):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
