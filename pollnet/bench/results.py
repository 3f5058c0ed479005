"""What a bench run produces: its parameters, one result per row, the report, and each
row's ratio to the socket row of the same run."""

from __future__ import annotations

import contextlib
import os
import platform
from array import array
from dataclasses import dataclass, field
from typing import Any

from pollnet.bench.rows import Row
from pollnet.bench.stats import LatencyStats
from pollnet.errors import PollnetError

SCHEMA = "pollnet-bench/1"


class BenchError(PollnetError):
    """The bench itself could not run (not a row failing: that is reported in the row)."""


@dataclass
class Params:
    mode: str = "latency"
    size: int = 64
    count: int = 100_000
    warmup: int = 1000
    warmup_sec: float = 0.0
    duration: float = 0.0
    mps: int = 0
    full_rtt: bool = False
    streams: int = 1
    peer: str = "pollnet"
    pin: bool = True
    net: str = "auto"  # auto | netns | loopback
    mtu: int = 0       # the veth's MTU (0 = 1500)
    tcpdirect_library: str = "libonload_zf.so"
    efvi: dict[str, Any] = field(default_factory=dict)  # efvi knobs for efvi/native rows
    timeout: float = 120.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RowResult:
    row: Row
    status: str = "ok"  # ok | unavailable | failed
    reason: str = ""
    latency: LatencyStats | None = None
    figures: dict[str, float] = field(default_factory=dict)
    samples: array[int] | None = None
    ratio: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "row": self.row.name,
            "label": self.row.label,
            "kind": self.row.kind,
            "link": self.row.link,
            "status": self.status,
        }
        if self.reason:
            d["reason"] = self.reason
        if self.latency is not None:
            d["latency"] = self.latency.as_dict()
        if self.figures:
            d["figures"] = self.figures
        if self.ratio:
            d["ratio_to_socket"] = self.ratio
        return d


@dataclass
class Report:
    params: Params
    network: dict[str, Any]
    rows: list[RowResult]
    started: str
    machine: dict[str, Any]

    def date_line(self) -> str:
        m = self.machine
        return f"{self.started}, {m.get('cpus')} CPUs, kernel {m.get('kernel')}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "date": self.started,
            "machine": self.machine,
            "network": self.network,
            "params": self.params.as_dict(),
            "rows": [r.as_dict() for r in self.rows],
        }


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        cpus = len(os.sched_getaffinity(0))
    except OSError:
        cpus = os.cpu_count() or 0
    return {"host": platform.node(), "kernel": platform.release(), "cpu": cpu, "cpus": cpus,
            "python": platform.python_version()}


def add_ratios(results: list[RowResult], mode: str) -> None:
    """Each row against the socket row of the same run."""
    base = next((r for r in results if r.row.kind == "socket" and r.status == "ok"), None)
    if base is None:
        return
    for r in results:
        if r.status != "ok":
            continue
        if mode == "latency" and r.latency is not None and base.latency is not None:
            r.ratio = {
                "p50": r.latency.p50 / base.latency.p50 if base.latency.p50 else 0.0,
                "p99": r.latency.p99 / base.latency.p99 if base.latency.p99 else 0.0,
            }
        else:
            key = {"throughput": "mb_per_s", "connect": "conn_per_s", "idle": "ns_per_poll",
                   "memory": "python_bytes_per_conn",
                   "overhead": "overhead_ns_per_msg"}.get(mode)
            if key and key in r.figures and base.figures.get(key):
                r.ratio = {key: r.figures[key] / base.figures[key]}
