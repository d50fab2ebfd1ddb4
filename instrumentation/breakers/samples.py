"""Turn a breaker's (or thread pool's) one-second buckets into report samples, and its settings into
the Hystrix ``propertyValue_*`` names (without the prefix)."""

from __future__ import annotations

from typing import Any

from tracehouse.instrumentation.breakers.breaker import BreakerCore
from tracehouse.instrumentation.breakers.bulkhead import ThreadPoolBulkhead
from tracehouse.instrumentation.breakers.window import Bucket, Outcome
from tracehouse.instrumentation.breakers.wire import BreakerSample

__all__ = ["breaker_properties", "bucket_sample", "pool_sample"]

_KEYS = [outcome.key for outcome in Outcome]


def breaker_properties(breaker: BreakerCore) -> dict[str, Any]:
    config = breaker.config
    return {
        "circuitBreakerRequestVolumeThreshold": config.minimum_calls,
        "circuitBreakerSleepWindowInMilliseconds": int(config.wait_in_open * 1000),
        "circuitBreakerErrorThresholdPercentage": config.failure_rate_threshold,
        "circuitBreakerEnabled": breaker.state.value != "DISABLED",
        "executionIsolationStrategy": "THREAD" if breaker.thread_pool is not None else "SEMAPHORE",
        "executionTimeoutInMilliseconds": 0 if config.timeout is None else int(config.timeout * 1000),
        "executionIsolationSemaphoreMaxConcurrentRequests": (
            0 if breaker.bulkhead is None else breaker.bulkhead.max_concurrent
        ),
        "metricsRollingStatisticalWindowInMilliseconds": config.window * 1000,
        "threadPool": breaker.thread_pool.name if breaker.thread_pool is not None else breaker.group,
        "slowCallDurationInMilliseconds": 0 if config.slow_call_ms is None else config.slow_call_ms,
        "slowCallRateThreshold": config.slow_call_rate_threshold,
        "permittedNumberOfCallsInHalfOpenState": config.half_open_calls,
    }


def bucket_sample(breaker: BreakerCore, bucket: Bucket, properties: dict[str, Any]) -> BreakerSample:
    return BreakerSample(
        kind="command",
        name=breaker.name,
        group=breaker.group,
        second=bucket.second,
        state=breaker.state.value,
        counts={key: n for key, n in zip(_KEYS, bucket.counts, strict=True) if n},
        latency=bucket.latency,
        latency_sum_ms=bucket.latency_sum_ms,
        concurrency=breaker.concurrency,
        max_concurrency=bucket.max_concurrency,
        properties=properties,
    )


def pool_sample(pool: ThreadPoolBulkhead, bucket: Bucket, gauges: dict[str, float]) -> BreakerSample:
    return BreakerSample(
        kind="threadpool",
        name=pool.name,
        group=pool.name,
        second=bucket.second,
        counts={key: n for key, n in zip(_KEYS, bucket.counts, strict=True) if n},
        max_concurrency=bucket.max_concurrency,
        gauges=gauges,
        properties={"metricsRollingStatisticalWindowInMilliseconds": pool.window.seconds * 1000},
    )
