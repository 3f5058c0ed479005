"""`pollnet echo-server --shards N`: N echo-server processes behind one address and port,
one per RX queue, each pinned to its own CPU (docs/sharding.md)."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from types import FrameType

import click

from .common import RuntimeProblem

READY_TIMEOUT_S = 30.0
LISTENING = re.compile(r"listening on (\S+):(\d+)")
STOPPED = re.compile(r"stopped after (\d+) connection")


@dataclass
class Shard:
    queue: int
    cpu: int
    proc: subprocess.Popen[str]


def pick_cpus(n: int, cpus: str | None) -> list[int]:
    """Shard i's CPU: the i-th of --cpus, else of the CPUs this process may run on
    (round robin when there are fewer CPUs than shards)."""
    if cpus is None:
        allowed = sorted(os.sched_getaffinity(0))
    else:
        try:
            allowed = [int(c) for c in cpus.split(",") if c.strip()]
        except ValueError:
            raise click.BadParameter(f"{cpus!r}: give CPU numbers separated by commas, "
                                     "e.g. 0,1", param_hint="--cpus") from None
        if not allowed:
            raise click.BadParameter("no CPU given", param_hint="--cpus")
    return [allowed[i % len(allowed)] for i in range(n)]


def _start(argv: list[str], queue: int, shards: int, cpu: int, port: int | None) -> Shard:
    cmd = [sys.executable, "-m", "pollnet", "echo-server", *argv, "--queue", str(queue),
           "--shards", str(shards), "--cpu", str(cpu)]
    if port is not None:
        cmd += ["--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return Shard(queue, cpu, proc)


def _wait_listening(s: Shard) -> tuple[str, int]:
    """The shard's address once it says it listens; its error if it exits first."""
    out = s.proc.stdout
    assert out is not None
    deadline = time.monotonic() + READY_TIMEOUT_S
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([out], [], [], left)[0]:
            break  # silent for READY_TIMEOUT_S: hung, not starting
        line = out.readline()
        if not line:
            break
        if m := LISTENING.search(line):
            return m.group(1), int(m.group(2))
    s.proc.kill()
    _, err = s.proc.communicate()
    raise RuntimeProblem(f"shard {s.queue} did not start within {READY_TIMEOUT_S:g} s: "
                         f"{err.strip() or 'no error printed'}")


def _stop(shards: list[Shard]) -> list[str]:
    """SIGTERM to each shard; what each printed as it stopped."""
    for s in shards:
        if s.proc.poll() is None:
            s.proc.send_signal(signal.SIGTERM)
    said = []
    for s in shards:
        try:
            _, err = s.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            s.proc.kill()
            _, err = s.proc.communicate()
        m = STOPPED.search(err)
        said.append(f"shard {s.queue} (CPU {s.cpu}): "
                    + (f"{m.group(1)} connection(s)" if m
                       else f"exited {s.proc.returncode}: {err.strip()[-300:]}"))
    return said


def run_shards(argv: list[str], n: int, cpus: str | None, port: int | None) -> None:
    """Start shard 0, then the others on the port it bound (so --port 0 works), and serve
    until SIGINT/SIGTERM or until a shard exits (its queue's flows would go unserved)."""
    cpu_of = pick_cpus(n, cpus)
    shards: list[Shard] = []
    stop = [False]

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop[0] = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for q in range(n):
            shards.append(_start(argv, q, n, cpu_of[q], port))
            ip, bound = _wait_listening(shards[-1])
            port = bound
            click.echo(f"pollnet echo-server: shard {q} of {n} (queue {q}, CPU {cpu_of[q]}, "
                       f"pid {shards[-1].proc.pid}) listening on {ip}:{bound}")
        sys.stdout.flush()
        gone: Shard | None = None
        while not stop[0] and gone is None:
            time.sleep(0.2)
            gone = next((s for s in shards if s.proc.poll() is not None), None)
        said = _stop(shards)
        click.echo("pollnet echo-server: stopped; " + "; ".join(said), err=True)
        if gone is not None:
            raise RuntimeProblem(f"shard {gone.queue} exited (code {gone.proc.returncode}), "
                                 "so its queue's connections had no server: stopped them all")
    finally:
        for s in shards:
            if s.proc.poll() is None:
                s.proc.kill()
        for sig, h in previous.items():
            signal.signal(sig, h)
