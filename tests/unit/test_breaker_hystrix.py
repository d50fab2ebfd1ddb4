"""Hystrix stream events: every field the dashboard reads, with its type, in emission order; for many
hosts, the fields the dashboard divides by ``reportingHosts`` are sent multiplied by it."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.conftest import FakeClock
from tracehouse.instrumentation.breakers import CircuitBreaker, Registry
from tracehouse.instrumentation.breakers.histogram import bucket_value_ms, merge, percentile_bucket
from tracehouse.instrumentation.breakers.hystrix import (
    COMMAND_FIELDS,
    THREAD_POOL_FIELDS,
    command_event,
    thread_pool_event,
    window_view,
)
from tracehouse.instrumentation.breakers.stream import hystrix_events
from tracehouse.instrumentation.breakers.wire import BreakerSample

pytestmark = pytest.mark.usefixtures("clean_breakers")

INT, NUMBER, BOOL, STR, PERCENTILES = "int", "number", "bool", "str", "percentiles"
#: A boolean from one host; from several, Turbine's forms: a count of open hosts or {"true": n, "false": m}.
CIRCUIT = "circuit"
#: The reference's HystrixCommand fields in emission order, with the JSON type the dashboard needs.
COMMAND = [
    ("type", STR),
    ("name", STR),
    ("group", STR),
    ("currentTime", INT),
    ("isCircuitBreakerOpen", CIRCUIT),
    ("errorPercentage", INT),
    ("errorCount", INT),
    ("requestCount", INT),
    ("rollingCountBadRequests", INT),
    ("rollingCountCollapsedRequests", INT),
    ("rollingCountEmit", INT),
    ("rollingCountExceptionsThrown", INT),
    ("rollingCountFailure", INT),
    ("rollingCountFallbackEmit", INT),
    ("rollingCountFallbackFailure", INT),
    ("rollingCountFallbackMissing", INT),
    ("rollingCountFallbackRejection", INT),
    ("rollingCountFallbackSuccess", INT),
    ("rollingCountResponsesFromCache", INT),
    ("rollingCountSemaphoreRejected", INT),
    ("rollingCountShortCircuited", INT),
    ("rollingCountSuccess", INT),
    ("rollingCountThreadPoolRejected", INT),
    ("rollingCountTimeout", INT),
    ("currentConcurrentExecutionCount", INT),
    ("rollingMaxConcurrentExecutionCount", INT),
    ("latencyExecute_mean", NUMBER),
    ("latencyExecute", PERCENTILES),
    ("latencyTotal_mean", NUMBER),
    ("latencyTotal", PERCENTILES),
    ("propertyValue_circuitBreakerRequestVolumeThreshold", INT),
    ("propertyValue_circuitBreakerSleepWindowInMilliseconds", INT),
    ("propertyValue_circuitBreakerErrorThresholdPercentage", NUMBER),
    ("propertyValue_circuitBreakerForceOpen", BOOL),
    ("propertyValue_circuitBreakerForceClosed", BOOL),
    ("propertyValue_circuitBreakerEnabled", BOOL),
    ("propertyValue_executionIsolationStrategy", STR),
    ("propertyValue_executionIsolationThreadTimeoutInMilliseconds", INT),
    ("propertyValue_executionTimeoutInMilliseconds", INT),
    ("propertyValue_executionIsolationThreadInterruptOnTimeout", BOOL),
    ("propertyValue_executionIsolationThreadPoolKeyOverride", "str|null"),
    ("propertyValue_executionIsolationSemaphoreMaxConcurrentRequests", INT),
    ("propertyValue_fallbackIsolationSemaphoreMaxConcurrentRequests", INT),
    ("propertyValue_metricsRollingStatisticalWindowInMilliseconds", INT),
    ("propertyValue_requestCacheEnabled", BOOL),
    ("propertyValue_requestLogEnabled", BOOL),
    ("reportingHosts", INT),
    ("threadPool", STR),
]
THREAD_POOL = [
    ("type", STR),
    ("name", STR),
    ("currentTime", INT),
    ("currentActiveCount", INT),
    ("currentCompletedTaskCount", INT),
    ("currentCorePoolSize", INT),
    ("currentLargestPoolSize", INT),
    ("currentMaximumPoolSize", INT),
    ("currentPoolSize", INT),
    ("currentQueueSize", INT),
    ("currentTaskCount", INT),
    ("rollingCountThreadsExecuted", INT),
    ("rollingMaxActiveThreads", INT),
    ("rollingCountCommandRejections", INT),
    ("propertyValue_queueSizeRejectionThreshold", INT),
    ("propertyValue_metricsRollingStatisticalWindowInMilliseconds", INT),
    ("reportingHosts", INT),
]
PERCENTILE_KEYS = ["0", "25", "50", "75", "90", "95", "99", "99.5", "100"]


def has_type(value: Any, kind: str) -> bool:
    if kind == INT:
        return type(value) is int
    if kind == NUMBER:
        return type(value) in (int, float) and math.isfinite(value)
    if kind == BOOL:
        return type(value) is bool
    if kind == STR:
        return type(value) is str
    if kind == CIRCUIT:
        split = type(value) is dict and list(value) == ["true", "false"] and all(type(n) is int for n in value.values())
        return type(value) in (bool, int) or split
    if kind == "str|null":
        return value is None or type(value) is str
    assert kind == PERCENTILES
    return list(value) == PERCENTILE_KEYS and all(has_type(v, NUMBER) for v in value.values())


def check_fields(event: dict[str, Any], fields: list[tuple[str, str]]) -> None:
    """Every field present, in the reference's order, with its type; and the event is valid JSON."""
    assert list(event) == [name for name, _ in fields]
    wrong = {name: event[name] for name, kind in fields if not has_type(event[name], kind)}
    assert not wrong
    json.dumps(event, allow_nan=False)


def test_the_published_field_lists_are_the_reference_lists() -> None:
    assert list(COMMAND_FIELDS) == [name for name, _ in COMMAND]
    assert list(THREAD_POOL_FIELDS) == [name for name, _ in THREAD_POOL]


def test_events_of_a_live_breaker_and_pool_have_every_field(fake_clock: FakeClock) -> None:
    registry = Registry()
    pool = registry.pool("stock", core_size=2, queue_size=1)
    b = CircuitBreaker("stock.check", thread_pool=pool, timeout=1.5, register=False, fallback=lambda: 0)
    registry.add(b)
    b.call(lambda: fake_clock.elapse(0.004))
    b.call(lambda: 1 / 0)
    found = {event["type"]: event for event in hystrix_events(registry)}
    command, tp = found["HystrixCommand"], found["HystrixThreadPool"]
    check_fields(command, COMMAND)
    check_fields(tp, THREAD_POOL)
    assert command["currentTime"] > 1_600_000_000_000  # epoch milliseconds
    assert (command["name"], command["group"], command["threadPool"]) == ("stock.check", "stock", "stock")
    assert command["propertyValue_executionTimeoutInMilliseconds"] == 1500
    assert command["propertyValue_executionIsolationStrategy"] == "THREAD"
    assert command["propertyValue_metricsRollingStatisticalWindowInMilliseconds"] == 10_000
    assert (command["requestCount"], command["errorCount"], command["errorPercentage"]) == (2, 1, 50)
    assert command["reportingHosts"] == tp["reportingHosts"] == 1
    assert (tp["name"], tp["rollingCountThreadsExecuted"], tp["currentCorePoolSize"]) == ("stock", 2, 2)
    assert tp["propertyValue_queueSizeRejectionThreshold"] == 1
    pool.shutdown(wait=True)


def test_an_empty_view_still_has_every_field() -> None:
    check_fields(command_event(window_view({}, 10), 0), COMMAND)
    check_fields(thread_pool_event(window_view({}, 10, "threadpool"), 0), THREAD_POOL)


def sample(second: int, counts: dict[str, int], latency: dict[int, int], sum_ms: float, **more: Any) -> BreakerSample:
    return BreakerSample(
        kind="command",
        name="pay.charge",
        group="pay",
        second=second,
        counts=counts,
        latency=latency,
        latency_sum_ms=sum_ms,
        properties={"circuitBreakerRequestVolumeThreshold": 20, "circuitBreakerSleepWindowInMilliseconds": 5000},
        **more,
    )


HOST = st.lists(
    st.tuples(
        st.fixed_dictionaries(
            {
                "success": st.integers(0, 50),
                "failure": st.integers(0, 20),
                "timeout": st.integers(0, 5),
                "short_circuited": st.integers(0, 20),
                "bad_request": st.integers(0, 5),
                "semaphore_rejected": st.integers(0, 3),
            }
        ),
        st.dictionaries(st.integers(100, 400), st.integers(1, 20), max_size=4),
    ),
    min_size=1,
    max_size=4,
)


@given(st.lists(HOST, min_size=1, max_size=5))
def test_fields_the_dashboard_divides_are_multiplied_by_hosts(hosts: list[list[Any]]) -> None:
    by_host = {}
    for h, seconds in enumerate(hosts):
        by_host[f"host-{h}"] = [
            sample(1_700_000_000 + i, counts, latency, sum(n * bucket_value_ms(k) for k, n in latency.items()))
            for i, (counts, latency) in enumerate(seconds)
        ]
    n = len(hosts)
    event = command_event(window_view(by_host, 10), 0)
    check_fields(event, COMMAND)
    assert event["reportingHosts"] == n

    every = [s for samples in by_host.values() for s in samples]
    total = {key: sum(s.counts[key] for s in every) for key in every[0].counts}
    requests = total["success"] + total["failure"] + total["timeout"] + total["semaphore_rejected"]
    errors = requests - total["success"]
    # Counts are sums, never multiplied.
    assert (event["requestCount"], event["errorCount"]) == (requests, errors)
    assert event["rollingCountShortCircuited"] == total["short_circuited"]
    assert event["rollingCountBadRequests"] == total["bad_request"]
    assert event["propertyValue_circuitBreakerRequestVolumeThreshold"] == 20
    # What the dashboard shows after dividing by reportingHosts (and rounding to one decimal) is the
    # cluster's true value; one host's event is Hystrix's own (truncated).
    true_percentage = 0.0 if requests == 0 else 100 * errors / requests
    if n == 1:
        assert event["errorPercentage"] == int(true_percentage)
    else:
        assert event["errorPercentage"] / n == pytest.approx(true_percentage, abs=0.5 / n + 1e-9)
    assert event["propertyValue_metricsRollingStatisticalWindowInMilliseconds"] == 10_000 * n
    merged = merge(s.latency for s in every)
    calls = sum(merged.values())
    mean = 0.0 if calls == 0 else sum(s.latency_sum_ms for s in every) / calls
    for key in ("latencyExecute_mean", "latencyTotal_mean"):
        assert event[key] / n == pytest.approx(mean, abs=0.5 / n + 1e-3)
    for key, percentile in zip(PERCENTILE_KEYS, (0, 25, 50, 75, 90, 95, 99, 99.5, 100), strict=True):
        index = percentile_bucket(merged, percentile)
        true_value = 0.0 if index is None else bucket_value_ms(index)
        assert event["latencyExecute"][key] / n == pytest.approx(true_value, abs=0.5 / n + 1e-3)
        assert event["latencyTotal"][key] == event["latencyExecute"][key]


def test_open_means_a_majority_of_hosts_refuse_calls() -> None:
    def view(*states: str) -> dict[str, Any]:
        by_host = {f"h{i}": [sample(1_700_000_000, {}, {}, 0.0, state=s)] for i, s in enumerate(states)}
        return command_event(window_view(by_host, 10), 0)

    assert view("OPEN")["isCircuitBreakerOpen"] is True
    assert view("HALF_OPEN")["isCircuitBreakerOpen"] is True
    assert view("CLOSED")["isCircuitBreakerOpen"] is False
    forced = view("FORCED_OPEN", "FORCED_OPEN")
    assert (forced["propertyValue_circuitBreakerForceOpen"], forced["isCircuitBreakerOpen"]) == (True, 2)
    assert view("FORCED_OPEN", "CLOSED")["propertyValue_circuitBreakerForceOpen"] is False
    assert view("FORCED_CLOSED")["propertyValue_circuitBreakerForceClosed"] is True


def circuit_line(event: dict[str, Any]) -> str:
    """What the dashboard's circuit template (hystrixCircuit.html) prints, with JavaScript's ``==``."""

    def loose_equal(value: Any, number: int) -> bool:  # JavaScript's == between a field and a number
        return not isinstance(value, dict) and int(value) == number

    value, hosts = event["isCircuitBreakerOpen"], event["reportingHosts"]
    if loose_equal(value, hosts):
        return "Open (red)"
    if loose_equal(value, 0):
        return "Closed (green)"
    if isinstance(value, dict):
        return f"Open {value['true']} Closed {value['false']}"
    return "orange: " + str(value).lower().replace("true", "Open").replace("false", "Closed")


@pytest.mark.parametrize(
    ("states", "line"),
    [
        (["OPEN"], "Open (red)"),
        (["CLOSED"], "Closed (green)"),
        (["OPEN", "OPEN", "HALF_OPEN"], "Open (red)"),
        (["CLOSED", "CLOSED"], "Closed (green)"),
        (["OPEN", "OPEN", "CLOSED"], "Open 2 Closed 1"),
        (["OPEN", "CLOSED"], "Open 1 Closed 1"),
    ],
)
def test_the_dashboard_shows_each_hosts_circuit(states: list[str], line: str) -> None:
    by_host = {f"h{i}": [sample(1_700_000_000, {}, {}, 0.0, state=s)] for i, s in enumerate(states)}
    assert circuit_line(command_event(window_view(by_host, 10), 0)) == line


@pytest.mark.parametrize(("failures", "shown"), [(0, "0.0"), (1, "16.7"), (2, "33.3"), (3, "50.0"), (6, "100.0")])
def test_the_dashboard_shows_the_true_error_percentage_of_several_hosts(failures: int, shown: str) -> None:
    counts = {"success": 6 - failures, "failure": failures}
    # Three hosts, one of which made the calls: 16.67 % of the cluster's calls failed with one failure.
    by_host = {f"h{i}": [sample(1_700_000_000, counts if i == 0 else {}, {}, 0.0)] for i in range(3)}
    event = command_event(window_view(by_host, 10), 0)
    # hystrixCommand.js: roundNumber(errorPercentage / reportingHosts), one decimal.
    assert f"{round(event['errorPercentage'] / event['reportingHosts'] * 10) / 10:.1f}" == shown


def test_a_hosts_state_and_concurrency_are_its_newest() -> None:
    by_host = {
        "a": [
            sample(1_700_000_001, {}, {}, 0.0, state="CLOSED", concurrency=1, max_concurrency=4),
            sample(1_700_000_000, {}, {}, 0.0, state="OPEN", concurrency=9, max_concurrency=2),
        ],
        "b": [sample(1_700_000_000, {}, {}, 0.0, state="CLOSED", concurrency=2, max_concurrency=3)],
    }
    event = command_event(window_view(by_host, 10), 0)
    assert event["isCircuitBreakerOpen"] == 0  # no host open (a's newest second is closed)
    assert event["currentConcurrentExecutionCount"] == 3
    assert event["rollingMaxConcurrentExecutionCount"] == 4


def test_thread_pool_event_sums_gauges_and_multiplies_the_window() -> None:
    def pool_sample(active: float) -> BreakerSample:
        return BreakerSample(
            kind="threadpool",
            name="stock",
            group="stock",
            second=1_700_000_000,
            counts={"success": 5, "thread_pool_rejected": 1},
            max_concurrency=2,
            gauges={"currentActiveCount": active, "currentCorePoolSize": 10},
        )

    view = window_view({"a": [pool_sample(1)], "b": [pool_sample(2)]}, 10, "threadpool")
    event = thread_pool_event(view, 0)
    check_fields(event, THREAD_POOL)
    assert (event["currentActiveCount"], event["currentCorePoolSize"]) == (3, 20)
    assert (event["rollingCountThreadsExecuted"], event["rollingCountCommandRejections"]) == (10, 2)
    assert event["propertyValue_metricsRollingStatisticalWindowInMilliseconds"] == 20_000
    assert event["reportingHosts"] == 2
