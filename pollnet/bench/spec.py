"""What the bench runner tells a worker process: one `WorkerSpec`, passed as the worker's
JSON argument. runner.py builds it; worker.py and pyloops.py read its fields.

    python -m pollnet.bench.worker '{"role": "server", "kind": "socket", ...}'
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class WorkerSpec:
    role: str                   # "server" (echo, or discard with `sink`) or "client"
    kind: str                   # the row's kind: socket, efvi, efvi-pollnet, native, ...
    link: str | None = None     # efvi rows: sim, af_packet, af_xdp, efvi
    mode: str = "latency"       # a client's: latency, throughput, idle, connect, memory
    size: int = 64              # bytes per message (latency) or per write (throughput)
    client_ip: str = "127.0.0.1"
    server_ip: str = "127.0.0.1"
    port: int = 0               # the server's (a client's)
    ifname: str | None = None   # the interface of this side (netns runs)
    peer: str = "pollnet"       # the latency peer: pollnet's echo server, or sockperf
    streams: int = 1            # connections at once (throughput, memory)
    max_conns: int = 64
    cpu: int | None = None      # pin the worker to this CPU
    sink: bool = False          # server: discard instead of echo (throughput)
    sockperf_aware: bool = False  # server: the handler that answers sockperf's headers
    count: int = 0              # latency samples wanted
    warmup: int = 0             # round trips before the first sample
    warmup_ns: int = 0          # ... or this long
    duration_ns: int = 0        # 0: the mode's default (latency: until `count`)
    interval_ns: int = 0        # 0: back to back; else one round trip per interval
    polls: int = 200_000        # idle mode: polls timed
    connect_timeout: float = 10.0
    samples_path: str = ""      # where a latency client writes its samples (int64 ns)
    peer_mac: str = ""          # raw rows' client: the sink link's MAC (aa:bb:...)
    peer_mtu: int = 0           # ... and its MTU
    config: dict[str, Any] = field(default_factory=dict)  # pollnet config sections to merge
    efvi: dict[str, Any] = field(default_factory=dict)    # [efvi] options (efvi rows)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerSpec:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"worker spec: unknown field(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(known))}")
        return cls(**data)
