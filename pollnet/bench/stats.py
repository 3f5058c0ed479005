"""Latency arithmetic: nearest-rank percentiles (every reported value was observed), the
sockperf ladder, mean/stddev, and an HDR-style log-bucketed histogram.

Samples are round trips in integer nanoseconds. Reports are in microseconds, half the
round trip by default (as sockperf reports), the full round trip on request.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

# sockperf's ladder, top to bottom (MAX and MIN are the observed extremes).
LADDER: tuple[tuple[str, float], ...] = (
    ("max", 100.0),
    ("99.999", 99.999),
    ("99.99", 99.99),
    ("99.9", 99.9),
    ("99", 99.0),
    ("90", 90.0),
    ("75", 75.0),
    ("50", 50.0),
    ("25", 25.0),
    ("min", 0.0),
)

# Kept for the first bench's callers.
PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 50.0),
    ("p90", 90.0),
    ("p99", 99.0),
    ("p99.9", 99.9),
)

HIST_SUB_BITS = 5  # 32 linear sub-buckets per power of two: every bucket within ~3 %


def percentile(sorted_values: Sequence[int], p: float) -> int:
    """The nearest-rank p-th percentile of already sorted values (0 < p <= 100)."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0.0 < p <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {p}")
    rank = math.ceil(round(p / 100.0 * len(sorted_values), 9))
    return sorted_values[max(rank, 1) - 1]


def bucket_of(value_ns: int) -> tuple[int, int]:
    """(lower bound, width) of the HDR-style log-linear bucket holding `value_ns`: exact
    below 2**(HIST_SUB_BITS+1), then 2**HIST_SUB_BITS buckets per power of two."""
    if value_ns < 0:
        raise ValueError(f"negative sample {value_ns}")
    shift = max(0, value_ns.bit_length() - (HIST_SUB_BITS + 1))
    return (value_ns >> shift) << shift, 1 << shift


def histogram(samples_ns: Sequence[int]) -> list[dict[str, int]]:
    """Non-empty buckets in order: {"from_ns", "to_ns" (exclusive), "count"}."""
    counts: Counter[int] = Counter()
    shift_floor = HIST_SUB_BITS + 1
    for v in samples_ns:
        shift = v.bit_length() - shift_floor
        counts[(v >> shift) << shift if shift > 0 else v] += 1
    out = []
    for lower in sorted(counts):
        _, width = bucket_of(lower)
        out.append({"from_ns": lower, "to_ns": lower + width, "count": counts[lower]})
    return out


@dataclass(frozen=True)
class LatencyStats:
    """One row's latency figures, in microseconds of `rtt` ("half" or "full")."""

    count: int
    rtt: str
    mean: float
    stddev: float
    ladder: dict[str, float]
    cold: float | None
    msgs_per_sec: float
    elapsed_s: float
    histogram: list[dict[str, int]] = field(default_factory=list)

    @property
    def p50(self) -> float:
        return self.ladder["50"]

    @property
    def p99(self) -> float:
        return self.ladder["99"]

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["unit"] = "us"
        d["histogram"] = {
            "unit": "ns",
            "rtt": "full",
            "scheme": f"log-linear, {1 << HIST_SUB_BITS} sub-buckets per power of two",
            "buckets": self.histogram,
        }
        return d


def latency_stats(
    samples_ns: Sequence[int],
    elapsed_ns: int,
    *,
    cold_ns: int | None = None,
    full_rtt: bool = False,
    with_histogram: bool = True,
) -> LatencyStats:
    """Summarize round trips (ns); `elapsed_ns` is the measured run (for the rate)."""
    if not samples_ns:
        raise ValueError("no samples to summarize")
    ordered = sorted(samples_ns)
    n = len(ordered)
    div = 1000.0 if full_rtt else 2000.0  # ns -> µs (of a half round trip)
    mean_ns = math.fsum(ordered) / n
    var = math.fsum((v - mean_ns) ** 2 for v in ordered) / n
    ladder = {}
    for label, p in LADDER:
        if label == "min":
            v = ordered[0]
        elif label == "max":
            v = ordered[-1]
        else:
            v = percentile(ordered, p)
        ladder[label] = v / div
    return LatencyStats(
        count=n,
        rtt="full" if full_rtt else "half",
        mean=mean_ns / div,
        stddev=math.sqrt(var) / div,
        ladder=ladder,
        cold=None if cold_ns is None else cold_ns / div,
        msgs_per_sec=n / (elapsed_ns / 1e9) if elapsed_ns > 0 else 0.0,
        elapsed_s=elapsed_ns / 1e9,
        histogram=histogram(ordered) if with_histogram else [],
    )


# ------------------------------------------------------------------ the first bench's API


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
    """Full round trips (µs) at the first bench's fixed percentiles."""
    s = latency_stats(samples_ns, elapsed_ns, full_rtt=True, with_histogram=False)
    return LatencySummary(
        count=s.count,
        min=s.ladder["min"],
        p50=s.ladder["50"],
        p90=s.ladder["90"],
        p99=s.ladder["99"],
        p999=s.ladder["99.9"],
        max=s.ladder["max"],
        mean=s.mean,
        msgs_per_sec=s.msgs_per_sec,
    )
