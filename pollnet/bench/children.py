"""The bench's child processes: a worker (or sockperf, iperf3) whose output lines the
runner reads without spinning, pinned to its own CPU and never outliving the bench."""

from __future__ import annotations

import contextlib
import ctypes
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

from pollnet.bench.results import BenchError
from pollnet.bench.spec import WorkerSpec


def pick_cpus(pin: bool) -> tuple[int | None, int | None]:
    if not pin:
        return None, None
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except OSError:
        return None, None
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)


def child_env() -> dict[str, str]:
    """The workers' environment: no config overrides (a row's config is its own), but the
    build's choices: which core and which per-message path run."""
    keep = ("POLLNET_CORE_MODULE", "POLLNET_FAST_MODULE", "POLLNET_PURE_PYTHON")
    return {k: v for k, v in os.environ.items() if not k.startswith("POLLNET_") or k in keep}


class Child:
    """A worker (or sockperf) process whose stdout/stderr lines we read without spinning."""

    def __init__(self, cmd: list[str], what: str) -> None:
        self.what = what
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=child_env(), start_new_session=True,
                                     preexec_fn=_die_with_parent)
        self.err_lines: list[str] = []
        self.out_lines: list[str] = []

    def lines(self, timeout: float) -> Iterator[tuple[str, str]]:
        """("out"|"err", line) until both pipes close or `timeout` seconds pass."""
        assert self.proc.stdout is not None and self.proc.stderr is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ, "out")
            sel.register(self.proc.stderr, selectors.EVENT_READ, "err")
            open_ = 2
            while open_:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError(f"{self.what} did not finish within {timeout:.0f} s")
                for key, _ in sel.select(timeout=min(left, 0.5)):
                    line = key.fileobj.readline()  # type: ignore[union-attr]
                    if not line:
                        sel.unregister(key.fileobj)
                        open_ -= 1
                        continue
                    (self.out_lines if key.data == "out" else self.err_lines).append(line)
                    yield key.data, line.rstrip("\n")

    def stop(self) -> None:
        p = self.proc
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.terminate()
            try:
                p.wait(timeout=3)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                p.wait()
        for s in (p.stdout, p.stderr):
            if s is not None:
                s.close()

    def tail(self) -> str:
        text = "".join(self.err_lines[-5:] + self.out_lines[-3:]).strip()
        return text[-400:]


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the bench process dies, however it dies
    (a spinning echo server must never outlive it)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def worker_cmd(spec: WorkerSpec) -> list[str]:
    return [sys.executable, "-m", "pollnet.bench.worker", spec.to_json()]
