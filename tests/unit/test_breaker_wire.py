"""The breaker report's wire format: what ``to_json`` writes ``from_json`` reads back unchanged, and
bad input is refused with a ``ReportError`` naming the path of the first bad value."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.conftest import FakeClock
from tracehouse.instrumentation.breakers import CircuitBreaker
from tracehouse.instrumentation.breakers.histogram import MAX_BUCKET
from tracehouse.instrumentation.breakers.samples import breaker_properties, bucket_sample
from tracehouse.instrumentation.breakers.wire import (
    COUNT_KEYS,
    MAX_SAMPLES,
    STATES,
    BreakerReport,
    BreakerSample,
    ReportError,
)

pytestmark = pytest.mark.usefixtures("clean_breakers")

NOW = 1_764_100_000.0
NAME = st.text(min_size=1, max_size=200)
COUNT = st.integers(0, 2**63 - 1)
NUMBER = st.floats(min_value=0, max_value=1e300, allow_nan=False) | st.integers(0, 2**53)
PROPERTY = st.one_of(
    st.text(max_size=1000),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
)
SAMPLE = st.builds(
    BreakerSample,
    kind=st.sampled_from(["command", "threadpool"]),
    name=NAME,
    group=NAME,
    second=st.integers(1_000_000_000, int(NOW)),
    state=st.sampled_from(STATES),
    counts=st.dictionaries(st.sampled_from(sorted(COUNT_KEYS)), COUNT, max_size=5),
    latency=st.dictionaries(st.integers(0, MAX_BUCKET), COUNT, max_size=8),
    latency_sum_ms=st.floats(min_value=0, max_value=1e12, allow_nan=False),
    concurrency=COUNT,
    max_concurrency=COUNT,
    gauges=st.dictionaries(st.text(max_size=30), NUMBER.map(float), max_size=4),
    properties=st.dictionaries(st.text(max_size=50), PROPERTY, max_size=4),
)
REPORT = st.builds(BreakerReport, service=NAME, instance=NAME, cluster=NAME, samples=st.tuples(SAMPLE, SAMPLE))


@given(REPORT)
def test_round_trip_through_json_text(report: BreakerReport) -> None:
    text = json.dumps(report.to_json(), allow_nan=False)
    assert BreakerReport.from_json(json.loads(text), now=NOW) == report


def test_round_trip_of_a_real_breakers_sample(fake_clock: FakeClock) -> None:
    b = CircuitBreaker("orders.wire", register=False, fallback=lambda: None, slow_call_duration=0.01)
    b.call(lambda: fake_clock.elapse(0.02))
    b.call(lambda: 1 / 0)
    properties = breaker_properties(b)
    [bucket] = [x for x in b.recent_buckets() if x.second == int(fake_clock.now)]
    sample = bucket_sample(b, bucket, properties)
    assert dict(sample.counts) == {"success": 1, "failure": 1, "fallback_success": 1, "slow": 1}
    report = BreakerReport("orders", "host:1", "orders", (sample,))
    back = BreakerReport.from_json(json.loads(json.dumps(report.to_json())), now=fake_clock.now)
    assert back == report


def test_defaults_of_optional_fields() -> None:
    body = {"service": "orders", "instance": "i-1", "samples": [{"name": "pay.charge", "second": 1_700_000_000}]}
    report = BreakerReport.from_json(body, now=NOW)
    assert report.cluster == "orders"
    [sample] = report.samples
    assert (sample.kind, sample.group, sample.state) == ("command", "pay", "CLOSED")
    assert (dict(sample.counts), dict(sample.latency), sample.latency_sum_ms) == ({}, {}, 0.0)


def test_a_state_is_read_in_any_case() -> None:
    sample = {"name": "pay", "second": 1_700_000_000, "state": "open"}
    body = {"service": "orders", "instance": "i-1", "samples": [sample]}
    [sample] = BreakerReport.from_json(body, now=NOW).samples
    assert sample.state == "OPEN"


def test_unknown_count_keys_are_dropped_as_unknown_fields_are() -> None:
    body = copy.deepcopy(GOOD)
    body["samples"][0]["counts"] = {"success": 3, "<script>": 9, "retried": "x"}
    assert dict(BreakerReport.from_json(body, now=NOW).samples[0].counts) == {"success": 3}


def test_unknown_fields_are_ignored() -> None:
    body = {
        "service": "orders",
        "instance": "i-1",
        "future": [1, 2],
        "samples": [{"name": "pay.charge", "second": 1_700_000_000, "extra": {"x": None}}],
    }
    assert BreakerReport.from_json(body, now=NOW).samples[0].name == "pay.charge"


GOOD: dict[str, Any] = {
    "service": "orders",
    "instance": "i-1",
    "samples": [
        {
            "kind": "command",
            "name": "pay.charge",
            "second": 1_700_000_000,
            "counts": {"success": 3},
            "latency": {"buckets": {"170": 2}, "sumMs": 1.5},
            "gauges": {"currentActiveCount": 1},
            "properties": {"circuitBreakerEnabled": True},
        }
    ],
}


def with_change(path: list[Any], value: Any) -> dict[str, Any]:
    body = copy.deepcopy(GOOD)
    target: Any = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


BAD = [
    (["service"], None, "service: must be a string of 1–200 characters"),
    (["service"], "", "service: must be a string of 1–200 characters"),
    (["instance"], "x" * 201, "instance: must be a string of 1–200 characters"),
    (["cluster"], 7, "cluster: must be a string of 1–200 characters"),
    (["samples"], {}, "samples: must be a list"),
    (["samples", 0], [], "samples[0]: must be a JSON object"),
    (["samples", 0, "kind"], "timer", "samples[0].kind: must be one of command, threadpool"),
    (["samples", 0, "name"], "", "samples[0].name: must be a string of 1–200 characters"),
    (["samples", 0, "second"], "soon", "samples[0].second: must be a non-negative integer"),
    (["samples", 0, "second"], True, "samples[0].second: must be a non-negative integer"),
    (["samples", 0, "second"], 1_700_000_000.0, "samples[0].second: must be a non-negative integer"),
    (["samples", 0, "second"], 999_999_999, "samples[0].second: 999999999 is not a plausible epoch second"),
    (["samples", 0, "second"], int(NOW) + 86_401, f"samples[0].second: {int(NOW) + 86_401} is not a plausible"),
    (["samples", 0, "state"], None, "samples[0].state: must be one of CLOSED, OPEN, HALF_OPEN, FORCED_OPEN, "),
    (["samples", 0, "state"], "<script>", "samples[0].state: must be one of CLOSED, OPEN, HALF_OPEN, FORCED_OPEN, "),
    (["samples", 0, "state"], "shut", "samples[0].state: must be one of CLOSED, OPEN, HALF_OPEN, FORCED_OPEN, "),
    (["samples", 0, "counts"], [1], "samples[0].counts: must be a JSON object"),
    (["samples", 0, "counts", "success"], -1, "samples[0].counts.success: must be a non-negative integer"),
    (["samples", 0, "counts", "success"], 2**63, "samples[0].counts.success: must be a non-negative integer"),
    (["samples", 0, "latency"], 5, "samples[0].latency: must be a JSON object"),
    (["samples", 0, "latency", "buckets"], [], "samples[0].latency.buckets: must be a JSON object"),
    (["samples", 0, "latency", "buckets", "171"], 0.5, "samples[0].latency.buckets.171: must be a non-negative"),
    (["samples", 0, "latency", "sumMs"], "1", "samples[0].latency.sumMs: must be a non-negative finite number"),
    (["samples", 0, "latency", "sumMs"], float("nan"), "samples[0].latency.sumMs: must be a non-negative finite"),
    (["samples", 0, "latency", "sumMs"], float("inf"), "samples[0].latency.sumMs: must be a non-negative finite"),
    (["samples", 0, "latency", "sumMs"], 10**400, "samples[0].latency.sumMs: must be a non-negative finite"),
    (["samples", 0, "latency", "sumMs"], -0.5, "samples[0].latency.sumMs: must be a non-negative finite"),
    (["samples", 0, "concurrency"], -1, "samples[0].concurrency: must be a non-negative integer"),
    (["samples", 0, "maxConcurrency"], "3", "samples[0].maxConcurrency: must be a non-negative integer"),
    (["samples", 0, "gauges"], [], "samples[0].gauges: must be a JSON object"),
    (["samples", 0, "gauges", "currentActiveCount"], False, "samples[0].gauges.currentActiveCount: must be a"),
    (["samples", 0, "properties"], "x", "samples[0].properties: must be a JSON object"),
    (["samples", 0, "properties", "p"], None, "samples[0].properties.p: must be a string, number or boolean"),
    (["samples", 0, "properties", "p"], [1], "samples[0].properties.p: must be a string, number or boolean"),
    (["samples", 0, "properties", "p"], float("nan"), "samples[0].properties.p: must be a string, number or"),
    (["samples", 0, "properties", "p"], "x" * 1001, "samples[0].properties.p: must be a string, number or"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD, ids=[m for _, _, m in BAD])
def test_bad_values_are_refused_naming_their_path(path: list[Any], value: Any, message: str) -> None:
    with pytest.raises(ReportError) as refused:
        BreakerReport.from_json(with_change(path, value), now=NOW)
    assert str(refused.value).startswith(message)


@pytest.mark.parametrize("key", ["651", "-1", "x", "1.5", "", "²", "٣", "9" * 5000, " 7"])
def test_bad_bucket_indexes_are_refused(key: str) -> None:
    body = with_change(["samples", 0, "latency", "buckets", key], 1)
    with pytest.raises(ReportError, match=r"samples\[0\]\.latency\.buckets: bucket .* is not an index 0–650"):
        BreakerReport.from_json(body, now=NOW)


def test_the_report_must_be_an_object_with_few_enough_samples() -> None:
    with pytest.raises(ReportError, match=r"^report: must be a JSON object$"):
        BreakerReport.from_json([GOOD], now=NOW)
    too_many = with_change(["samples"], [GOOD["samples"][0]] * (MAX_SAMPLES + 1))
    with pytest.raises(ReportError, match=f"samples: at most {MAX_SAMPLES} per report, got {MAX_SAMPLES + 1}"):
        BreakerReport.from_json(too_many, now=NOW)


def test_the_first_bad_sample_is_named() -> None:
    body = with_change(["samples"], [GOOD["samples"][0], GOOD["samples"][0], {"name": "x", "second": -5}])
    with pytest.raises(ReportError, match=r"^samples\[2\]\.second: must be a non-negative integer$"):
        BreakerReport.from_json(body, now=NOW)


def test_a_report_error_is_a_value_error() -> None:
    assert issubclass(ReportError, ValueError)
