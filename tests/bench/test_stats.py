"""Bench arithmetic on fixed sample sets: the sockperf ladder, half/full round trips,
mean and stddev, the log-bucketed histogram, and the JSON document's shape."""

from __future__ import annotations

import json
import math

import pytest

from pollnet.bench.results import SCHEMA, Params, Report, RowResult, add_ratios
from pollnet.bench.rows import parse_row
from pollnet.bench.stats import (
    HIST_SUB_BITS,
    LADDER,
    bucket_of,
    histogram,
    latency_stats,
    percentile,
)

LABELS = ["max", "99.999", "99.99", "99.9", "99", "90", "75", "50", "25", "min"]


def test_ladder_is_sockperfs_from_max_to_min() -> None:
    assert [label for label, _ in LADDER] == LABELS


def test_ladder_on_1_to_100000_full_rtt() -> None:
    samples = list(range(100_000, 0, -1))  # ns, reversed: sorting is the stats' job
    s = latency_stats(samples, elapsed_ns=1_000_000_000, full_rtt=True)
    expect_ns = {"max": 100_000, "99.999": 99_999, "99.99": 99_990, "99.9": 99_900,
                 "99": 99_000, "90": 90_000, "75": 75_000, "50": 50_000, "25": 25_000,
                 "min": 1}
    assert s.ladder == {k: v / 1000 for k, v in expect_ns.items()}
    assert s.count == 100_000 and s.rtt == "full"
    assert s.mean == pytest.approx(50_000.5 / 1000)
    assert s.stddev == pytest.approx(math.sqrt((100_000**2 - 1) / 12) / 1000)
    assert s.msgs_per_sec == pytest.approx(100_000)


def test_half_rtt_is_the_default_and_halves_everything() -> None:
    samples = [2000, 4000, 6000, 8000]
    half = latency_stats(samples, 1, cold_ns=10_000)
    full = latency_stats(samples, 1, cold_ns=10_000, full_rtt=True)
    assert half.rtt == "half"
    assert half.ladder["50"] == 2.0 and full.ladder["50"] == 4.0
    assert half.cold == 5.0 and full.cold == 10.0
    assert half.mean == full.mean / 2 and half.stddev == full.stddev / 2


def test_percentile_nearest_rank_has_no_float_off_by_one() -> None:
    values = list(range(1, 10_001))
    assert percentile(values, 99.99) == 9999
    assert percentile(values, 99.999) == 10_000
    assert percentile(values, 25) == 2500


def test_cold_sample_absent_is_none() -> None:
    assert latency_stats([5], 1).cold is None


@pytest.mark.parametrize("v", [0, 1, 63, 64, 65, 127, 128, 1000, 123_456_789])
def test_bucket_holds_value_within_precision(v: int) -> None:
    lower, width = bucket_of(v)
    assert lower <= v < lower + width
    if v >= 1 << (HIST_SUB_BITS + 1):
        assert width / v <= 1 / (1 << HIST_SUB_BITS)
    else:
        assert width == 1


def test_histogram_counts_every_sample_in_order() -> None:
    samples = [1, 1, 2, 100, 101, 5000, 5001, 5002, 1_000_000]
    h = histogram(samples)
    assert sum(b["count"] for b in h) == len(samples)
    assert [b["from_ns"] for b in h] == sorted(b["from_ns"] for b in h)
    assert h[0] == {"from_ns": 1, "to_ns": 2, "count": 2}
    for b in h:
        assert any(b["from_ns"] <= s < b["to_ns"] for s in samples)
    with pytest.raises(ValueError):
        bucket_of(-1)


def test_no_samples_is_an_error() -> None:
    with pytest.raises(ValueError, match="no samples"):
        latency_stats([], 1)


def _report() -> Report:
    sock = RowResult(parse_row("socket"), latency=latency_stats([4000, 6000, 8000], 10,
                                                                cold_ns=9000))
    sim = RowResult(parse_row("efvi:sim"), latency=latency_stats([2000, 3000, 4000], 10))
    gone = RowResult(parse_row("tcpdirect"), "unavailable", "no libonload_zf.so")
    rows = [sock, sim, gone]
    add_ratios(rows, "latency")
    return Report(Params(count=3), {"kind": "loopback"}, rows, "2026-01-01T00:00:00Z",
                  {"cpus": 2, "kernel": "x"})


def test_json_document_schema() -> None:
    data = json.loads(json.dumps(_report().as_dict()))
    assert data["schema"] == SCHEMA
    assert set(data) == {"schema", "date", "machine", "network", "params", "rows"}
    assert data["params"]["count"] == 3 and data["params"]["mode"] == "latency"
    sock, sim, gone = data["rows"]
    assert sock["status"] == "ok" and sock["ratio_to_socket"] == {"p50": 1.0, "p99": 1.0}
    lat = sock["latency"]
    assert set(lat) >= {"count", "rtt", "unit", "mean", "stddev", "ladder", "cold",
                        "msgs_per_sec", "elapsed_s", "histogram"}
    assert list(lat["ladder"]) == LABELS
    assert lat["unit"] == "us" and lat["cold"] == 4.5
    assert lat["histogram"]["unit"] == "ns"
    assert sum(b["count"] for b in lat["histogram"]["buckets"]) == 3
    assert sim["ratio_to_socket"]["p50"] == pytest.approx(1.5 / 3.0)
    assert gone == {"row": "tcpdirect", "label": "tcpdirect", "kind": "tcpdirect",
                    "link": None, "status": "unavailable", "reason": "no libonload_zf.so"}


def test_ratios_need_a_socket_row() -> None:
    sim = RowResult(parse_row("efvi:sim"), latency=latency_stats([2000], 10))
    add_ratios([sim], "latency")
    assert sim.ratio == {}


def test_ratios_of_other_modes() -> None:
    a = RowResult(parse_row("socket"), figures={"mb_per_s": 100.0})
    b = RowResult(parse_row("efvi:sim"), figures={"mb_per_s": 50.0})
    add_ratios([a, b], "throughput")
    assert b.ratio == {"mb_per_s": 0.5}
