"""Latency arithmetic: nearest-rank percentiles (every reported value was observed)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 50.0),
    ("p90", 90.0),
    ("p99", 99.0),
    ("p99.9", 99.9),
)


def percentile(sorted_values: Sequence[int], p: float) -> int:
    """The nearest-rank p-th percentile of already sorted values (0 < p <= 100)."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0.0 < p <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {p}")
    rank = math.ceil(p / 100.0 * len(sorted_values))
    return sorted_values[max(rank, 1) - 1]


@dataclass(frozen=True)
class LatencySummary:
    """Round-trip times in microseconds, and the message rate over the measured run."""

    count: int
    min: float
    p50: float
    p90: float
    p99: float
    p999: float
    max: float
    mean: float
    msgs_per_sec: float

    def as_dict(self) -> dict[str, float | int]:
        d = asdict(self)
        order = ("count", "min", "p50", "p90", "p99", "p999", "max", "mean", "msgs_per_sec")
        return {("p99.9" if k == "p999" else k): d[k] for k in order}

    def ladder(self) -> list[tuple[str, float]]:
        """(label, µs) from min to max, for printing."""
        return [
            ("min", self.min),
            ("p50", self.p50),
            ("p90", self.p90),
            ("p99", self.p99),
            ("p99.9", self.p999),
            ("max", self.max),
        ]


def summarize(samples_ns: Sequence[int], elapsed_ns: int) -> LatencySummary:
    """Summarize per-message round trips (ns); `elapsed_ns` is the whole measured run."""
    if not samples_ns:
        raise ValueError("no samples to summarize")
    ordered = sorted(samples_ns)
    us = 1e-3
    pct = {label: percentile(ordered, p) * us for label, p in PERCENTILES}
    return LatencySummary(
        count=len(ordered),
        min=ordered[0] * us,
        p50=pct["p50"],
        p90=pct["p90"],
        p99=pct["p99"],
        p999=pct["p99.9"],
        max=ordered[-1] * us,
        mean=sum(ordered) / len(ordered) * us,
        msgs_per_sec=len(ordered) / (elapsed_ns / 1e9) if elapsed_ns > 0 else 0.0,
    )
