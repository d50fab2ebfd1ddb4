"""The mergeable latency histogram: percentiles of merged histograms are the buckets of the
nearest-rank percentiles of all the raw latencies, and a bucket's value is within 2 % of its latencies."""

from __future__ import annotations

import math
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from tracehouse.instrumentation.breakers.histogram import (
    GAMMA,
    MAX_BUCKET,
    PERCENTILES,
    bucket_of,
    bucket_value_ms,
    merge,
    percentile_bucket,
    percentiles_ms,
)
from tracehouse.instrumentation.breakers.window import Outcome, RollingWindow

LATENCY_MS = st.floats(min_value=0.0, max_value=600_000.0, allow_nan=False)
PERCENTILE = st.one_of(st.sampled_from([p for _, p in PERCENTILES]), st.integers(0, 100).map(float))


def histogram_of(latencies: list[float]) -> dict[int, int]:
    found: dict[int, int] = {}
    for latency in latencies:
        found[bucket_of(latency)] = found.get(bucket_of(latency), 0) + 1
    return found


def nearest_rank(values: list[float], percentile: float) -> float:
    """The textbook nearest-rank percentile, in exact arithmetic."""
    ordered = sorted(values)
    rank = max(1, math.ceil(Fraction(percentile) * len(ordered) / 100))
    return ordered[rank - 1]


@given(st.lists(st.lists(LATENCY_MS, max_size=40), min_size=1, max_size=6), PERCENTILE)
def test_percentile_of_merged_histograms_is_the_bucket_of_the_raw_percentile(
    hosts: list[list[float]], percentile: float
) -> None:
    merged = merge(histogram_of(latencies) for latencies in hosts)
    everything = [latency for latencies in hosts for latency in latencies]
    if not everything:
        assert percentile_bucket(merged, percentile) is None
        return
    assert percentile_bucket(merged, percentile) == bucket_of(nearest_rank(everything, percentile))


@given(st.lists(st.lists(LATENCY_MS, max_size=30), min_size=1, max_size=5))
def test_merge_is_the_histogram_of_all_values(hosts: list[list[float]]) -> None:
    merged = merge(histogram_of(latencies) for latencies in hosts)
    assert merged == histogram_of([latency for latencies in hosts for latency in latencies])
    assert sum(merged.values()) == sum(len(latencies) for latencies in hosts)


@given(st.lists(LATENCY_MS, min_size=1, max_size=50))
def test_window_buckets_hold_the_histogram_of_recorded_latencies(latencies: list[float]) -> None:
    window = RollingWindow(10)
    for i, latency in enumerate(latencies):
        window.record(1_700_000_000 + i % 3, Outcome.SUCCESS, latency)
    buckets = window.recent(1_700_000_002)
    assert merge(b.latency for b in buckets) == histogram_of(latencies)
    assert math.isclose(sum(b.latency_sum_ms for b in buckets), sum(latencies), rel_tol=1e-9, abs_tol=1e-9)


@given(st.floats(min_value=0.0011, max_value=GAMMA**MAX_BUCKET / 1000 / GAMMA, allow_nan=False))
def test_bucket_value_is_within_two_percent(latency_ms: float) -> None:
    value = bucket_value_ms(bucket_of(latency_ms))
    assert abs(value - latency_ms) <= 0.02 * latency_ms


@given(LATENCY_MS, LATENCY_MS)
def test_buckets_are_ordered_like_latencies(a: float, b: float) -> None:
    if a <= b:
        assert bucket_of(a) <= bucket_of(b)


def test_bucket_edges() -> None:
    assert bucket_of(0.0) == bucket_of(0.001) == bucket_of(-5.0) == 0
    assert bucket_of(0.0011) == 3  # 1.1 µs: (1.04², 1.04³]
    assert bucket_of(1e12) == MAX_BUCKET  # everything beyond lands in the last bucket
    assert bucket_value_ms(0) == 0.001


def test_percentiles_of_an_empty_histogram_are_zero() -> None:
    assert percentiles_ms({}) == {key: 0.0 for key, _ in PERCENTILES}
    assert percentile_bucket({}, 50) is None
    assert percentile_bucket({3: 0}, 50) is None


def test_percentile_keys_are_the_hystrix_keys() -> None:
    one_of_each = histogram_of([1.0, 2.0, 3.0, 4.0])
    result = percentiles_ms(one_of_each)
    assert list(result) == ["0", "25", "50", "75", "90", "95", "99", "99.5", "100"]
    assert result["0"] == bucket_value_ms(bucket_of(1.0))
    assert result["25"] == bucket_value_ms(bucket_of(1.0))
    assert result["50"] == bucket_value_ms(bucket_of(2.0))
    assert result["75"] == bucket_value_ms(bucket_of(3.0))
    assert result["90"] == result["100"] == bucket_value_ms(bucket_of(4.0))
