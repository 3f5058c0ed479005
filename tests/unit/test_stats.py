"""Bench arithmetic: nearest-rank percentiles and the summary."""

from __future__ import annotations

import pytest

from pollnet.bench.stats import percentile, summarize


def test_percentile_nearest_rank() -> None:
    values = list(range(1, 101))  # 1..100
    assert percentile(values, 50) == 50
    assert percentile(values, 90) == 90
    assert percentile(values, 99) == 99
    assert percentile(values, 99.9) == 100
    assert percentile(values, 100) == 100
    assert percentile([7], 50) == 7


def test_percentile_reports_an_observed_value() -> None:
    values = [10, 20, 30, 40]
    assert percentile(values, 50) == 20
    assert percentile(values, 51) == 30


@pytest.mark.parametrize("p", [0, -1, 100.1])
def test_percentile_range(p: float) -> None:
    with pytest.raises(ValueError, match="percentile"):
        percentile([1, 2], p)


def test_percentile_of_nothing() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_summary_in_microseconds() -> None:
    samples = [3000, 1000, 2000, 4000]  # ns, unsorted
    s = summarize(samples, elapsed_ns=2_000_000_000)
    assert s.count == 4
    assert s.min == 1.0 and s.max == 4.0
    assert s.p50 == 2.0 and s.p90 == 4.0
    assert s.mean == 2.5
    assert s.msgs_per_sec == 2.0
    d = s.as_dict()
    assert list(d) == ["count", "min", "p50", "p90", "p99", "p99.9", "max", "mean", "msgs_per_sec"]
    assert [label for label, _ in s.ladder()] == ["min", "p50", "p90", "p99", "p99.9", "max"]


def test_summary_needs_samples() -> None:
    with pytest.raises(ValueError, match="no samples"):
        summarize([], 1)
