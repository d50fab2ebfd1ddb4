"""A mergeable latency histogram on fixed logarithmic buckets, the same on every host.

Because every process uses the same bucket bounds, histograms of many instances and many seconds
add up exactly, and a cluster percentile read from the sum is the percentile of all the raw
latencies to the bucket (Turbine summed per-host percentiles instead, which is meaningless).
Bucket ``i`` holds latencies in ``(GAMMA**(i-1), GAMMA**i]`` microseconds; bucket 0 everything
up to 1 µs. With ``GAMMA = 1.04`` a bucket's representative value is within 2 % of any latency in it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

__all__ = [
    "GAMMA",
    "MAX_BUCKET",
    "PERCENTILES",
    "bucket_of",
    "bucket_value_ms",
    "merge",
    "percentile_bucket",
    "percentiles_ms",
]

GAMMA = 1.04
_LOG_GAMMA = math.log(GAMMA)
#: Latencies above GAMMA**MAX_BUCKET µs (about 1.4 hours) all land in the last bucket.
MAX_BUCKET = 650
#: The percentiles the Hystrix stream reports, by their keys in ``latencyExecute``.
PERCENTILES: tuple[tuple[str, float], ...] = (
    ("0", 0.0),
    ("25", 25.0),
    ("50", 50.0),
    ("75", 75.0),
    ("90", 90.0),
    ("95", 95.0),
    ("99", 99.0),
    ("99.5", 99.5),
    ("100", 100.0),
)


def bucket_of(latency_ms: float) -> int:
    """The bucket of a latency given in milliseconds."""
    micros = latency_ms * 1000.0
    if micros <= 1.0:
        return 0
    index = math.ceil(math.log(micros) / _LOG_GAMMA)
    return index if index < MAX_BUCKET else MAX_BUCKET


def bucket_value_ms(index: int) -> float:
    """The representative latency of a bucket in ms: within 2 % of every latency in it."""
    if index <= 0:
        return 0.001
    return 2.0 * GAMMA**index / (GAMMA + 1.0) / 1000.0


def merge(histograms: Iterable[Mapping[int, int]]) -> dict[int, int]:
    """The sum of histograms (bucket index → count)."""
    total: dict[int, int] = {}
    for histogram in histograms:
        for index, count in histogram.items():
            total[index] = total.get(index, 0) + count
    return total


def percentile_bucket(histogram: Mapping[int, int], percentile: float) -> int | None:
    """The bucket holding the nearest-rank ``percentile`` (0–100); ``None`` when empty.

    Nearest rank: the value of rank ``ceil(p/100 · n)`` (at least 1) in sorted order, so
    p0 is the smallest latency's bucket and p100 the largest's.
    """
    n = sum(histogram.values())
    if n <= 0:
        return None
    rank = max(1, math.ceil(percentile / 100.0 * n - 1e-9))
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return index
    return max(histogram)


def percentiles_ms(histogram: Mapping[int, int]) -> dict[str, float]:
    """The Hystrix percentile keys of ``histogram`` in ms (all 0 when it is empty)."""
    result: dict[str, float] = {}
    for key, percentile in PERCENTILES:
        index = percentile_bucket(histogram, percentile)
        result[key] = 0.0 if index is None else bucket_value_ms(index)
    return result
