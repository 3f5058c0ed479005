"""One side of one benchmark row, in its own process (and namespace):

    python -m pollnet.bench.worker '{"role": "server", "kind": "socket", ...}'

The server prints `READY <ip> <port>` once listening and echoes until SIGTERM/SIGINT (the
native echo returns to Python at least once a second to see them). The client connects,
measures, writes raw samples to `samples_path` (int64 round-trip ns) and prints one JSON
line `RESULT {...}`; progress goes to stderr as `PROGRESS <done> <total>`. Errors print
`ERROR <why>` and exit 3. Each process pins itself to `cpu` first.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
from types import FrameType

from pollnet.bench import loops, pyloops, raw
from pollnet.bench.handlers import Echo, FastEcho, Sink
from pollnet.bench.measure import MODES
from pollnet.bench.sides import make_server
from pollnet.bench.spec import WorkerSpec

_stop = [False]


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _stop[0] = True


def emit(tag: str, payload: object = "") -> None:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    sys.stdout.write(f"{tag} {text}\n")
    sys.stdout.flush()


def serve(spec: WorkerSpec) -> None:
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    if spec.kind in pyloops.KINDS:
        pyloops.serve(spec, lambda ip, port: emit("READY", f"{ip} {port}"), lambda: _stop[0])
        return
    if spec.kind == "raw":
        emit("RESULT", raw.serve(spec, lambda text: emit("READY", text), lambda: _stop[0]))
        return
    server, ip, port = make_server(spec)
    emit("READY", f"{ip} {port}")
    if spec.kind == "native":
        from pollnet.backends.efvi.core import binding as _core

        ffi, lib = _core.require()
        res = ffi.new("pn_bench_echo_result *")
        stack = server._stack
        while not _stop[0]:
            rc = lib.pn_bench_echo(stack, 1_000_000_000, res)
            if rc < 0 and rc != lib.PN_EAGAIN:
                raise loops.LoopError(f"native echo: {_core.c_string(lib.pn_strerror(rc))}")
        return
    handler: object = Echo() if spec.sockperf_aware else FastEcho()
    if spec.sink:
        handler = Sink()
    poll = server.poll
    gc.disable()
    while not _stop[0]:
        poll(handler)


def main(argv: list[str]) -> int:
    spec = WorkerSpec.from_json(argv[1])
    cpu = spec.cpu
    try:
        if cpu is not None:
            os.sched_setaffinity(0, {int(cpu)})
        if spec.role == "server":
            serve(spec)
        else:
            emit("RESULT", MODES[spec.mode](spec))
    except KeyboardInterrupt:
        emit("ERROR", "interrupted")
        return 3
    except Exception as exc:
        emit("ERROR", f"{type(exc).__name__}: {exc}".replace("\n", " "))
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
