"""Unit tests of the Hystrix pull: rolling snapshots → per-second deltas (scripted sequences with the
exact deltas expected), latency spreading, targets, and the SSE reader."""

from __future__ import annotations

import collections
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracehouse.collector.hystrix_deltas import MAX_GAP, SnapshotDeltas, spread_latency
from tracehouse.collector.hystrix_pull import HystrixPuller, PullTarget, _Stream, parse_target, read_targets_file
from tracehouse.collector.sse import SseParser
from tracehouse.instrumentation.breakers.histogram import bucket_of, merge, percentiles_ms
from tracehouse.instrumentation.breakers.wire import BreakerReport, BreakerSample

FIELDS = {
    "success": "rollingCountSuccess",
    "failure": "rollingCountFailure",
    "timeout": "rollingCountTimeout",
    "short_circuited": "rollingCountShortCircuited",
    "thread_pool_rejected": "rollingCountThreadPoolRejected",
    "semaphore_rejected": "rollingCountSemaphoreRejected",
    "bad_request": "rollingCountBadRequests",
    "fallback_success": "rollingCountFallbackSuccess",
    "fallback_failure": "rollingCountFallbackFailure",
    "fallback_missing": "rollingCountFallbackMissing",
    "exception_thrown": "rollingCountExceptionsThrown",
}


def command(name: str = "payments.charge", window_ms: Any = 10_000, **counts: Any) -> dict[str, Any]:
    """A HystrixCommand event with the given rolling counts (by report key) and nothing else."""
    event: dict[str, Any] = {"type": "HystrixCommand", "name": name, "group": name.split(".")[0]}
    event["propertyValue_metricsRollingStatisticalWindowInMilliseconds"] = window_ms
    event.update({FIELDS[key]: n for key, n in counts.items()})
    return event


def deltas(
    script: list[tuple[int, dict[str, Any]]], converter: SnapshotDeltas | None = None
) -> dict[int, dict[str, int]]:
    """Feed (second, event) pairs; the counts of each second's sample of the one series."""
    converter = converter or SnapshotDeltas()
    for second, event in script:
        converter.observe(event, second)
    samples = converter.take(2**62)
    assert len({(s.kind, s.name, s.second) for s in samples}) == len(samples)
    return {s.second: dict(s.counts) for s in samples}


def rolling(values: dict[int, int], key: str = "success") -> list[tuple[int, dict[str, Any]]]:
    return [(second, command(**{key: n})) for second, n in values.items()]


# -- snapshots → deltas ----------------------------------------------------------------------


def test_growth_is_counted_in_the_second_it_is_seen() -> None:
    assert deltas(rolling({100: 0, 101: 5, 102: 12, 103: 12})) == {
        100: {},
        101: {"success": 5},
        102: {"success": 7},
        103: {},
    }


def test_snapshots_of_one_second_make_one_sample() -> None:
    script = [(100, command(success=0)), (101, command(success=3)), (101, command(success=5, failure=1))]
    assert deltas(script) == {100: {}, 101: {"success": 5, "failure": 1}}


def test_events_rolling_out_of_the_window_are_not_counted_again() -> None:
    seen = {100: 0, 101: 5, 102: 12} | dict.fromkeys(range(103, 111), 12) | {111: 10, 112: 3, 113: 3, 120: 3, 121: 0}
    got = deltas(rolling(seen))
    # at 111 the 5 of second 101 left the window (12 − 5 = 7 stay) and 3 came; at 112 the 7 of 102 left
    assert {s: c for s, c in got.items() if c} == {101: {"success": 5}, 102: {"success": 7}, 111: {"success": 3}}


def test_steady_load_is_counted_second_by_second() -> None:
    # 4 calls a second for 30 seconds: the window fills to 40 and stays there
    seen = {100: 0} | {100 + s: 4 * min(s, 10) for s in range(1, 31)}
    got = deltas(rolling(seen))
    assert all(got[s] == {"success": 4} for s in range(101, 131))


def test_steady_load_joined_mid_flight_has_no_lump_that_repeats() -> None:
    # 100 calls a second long before the collector connects: every snapshot shows a full window of 1000
    converter = SnapshotDeltas()
    converter.connected(100)
    seen = dict.fromkeys(range(100, 135), 1000)
    got = deltas(rolling(seen), converter)
    per_second = [got[s].get("success", 0) for s in range(100, 135)]
    assert per_second == [100] * 35  # from the first second on; neither 1000 at 100, nor at 110, 120, 130
    # what was stored over any W seconds is what the emitter's window showed
    assert all(sum(per_second[i : i + 10]) == 1000 for i in range(len(per_second) - 9))
    assert converter.clamped == 0


def test_a_window_that_came_in_one_burst_before_the_connect_is_not_counted_twice() -> None:
    # Indistinguishable from steady load until the window turns: 1000 calls just before the connect,
    # none after; counting the whole window at once *and* letting it roll out spread would count 1900
    converter = SnapshotDeltas()
    converter.connected(100)
    got = deltas(rolling(dict.fromkeys(range(100, 110), 1000) | dict.fromkeys(range(110, 125), 0)), converter)
    assert sum(c.get("success", 0) for c in got.values()) == 1000
    assert all(got[s] == {} for s in range(110, 125))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 50), min_size=1, max_size=40),
    st.lists(st.integers(1, 6), min_size=1, max_size=25),
    st.integers(0, 15),
)
def test_joined_at_any_moment_nothing_is_counted_twice(calls: list[int], steps: list[int], joined: int) -> None:
    """An exact 10-second emitter with any traffic, watched from any second with any gaps: what is
    counted up to any second never exceeds the calls its window ever showed up to that second."""
    made = collections.defaultdict(int, enumerate(calls))  # no calls before 0 nor after the list
    converter = SnapshotDeltas()
    converter.connected(joined)
    second = joined
    for step in steps:
        converter.observe(command(success=sum(made[s] for s in range(second - 9, second + 1))), second)
        second += step
    counted = 0
    for sample in converter.take(2**62):
        counted += sample.counts.get("success", 0)
        assert counted <= sum(made[s] for s in range(joined - 9, sample.second + 1))


def test_an_emitter_dropping_events_early_gets_nothing_counted_twice() -> None:
    # opossum shows W − 1 = 9 whole buckets: a burst seen at 101 is gone at 110, a second early
    seen = {100: 0, 101: 9} | dict.fromkeys(range(102, 110), 9) | {110: 0, 111: 0, 112: 2}
    converter = SnapshotDeltas()
    got = deltas(rolling(seen), converter)
    # rolling − previous + rolled out would say 9 again at 111; the belief says the window is empty
    assert {s: c for s, c in got.items() if c} == {101: {"success": 9}, 112: {"success": 2}}
    assert converter.clamped == 9
    assert converter.resets == 0


def test_a_counter_reset_restarts_the_count_instead_of_going_negative() -> None:
    converter = SnapshotDeltas()
    got = deltas(rolling({100: 0, 101: 10, 102: 20, 103: 30, 104: 3, 105: 8, 106: 8}), converter)
    assert got == {
        100: {},
        101: {"success": 10},
        102: {"success": 10},
        103: {"success": 10},
        104: {"success": 3},
        105: {"success": 5},
        106: {},
    }
    assert converter.resets == 1
    assert converter.clamped == 0


def test_a_reset_of_one_series_leaves_the_others_alone() -> None:
    converter = SnapshotDeltas()
    for second, (a, b) in {100: (0, 0), 101: (10, 5), 102: (20, 10), 103: (2, 15), 104: (2, 15)}.items():
        converter.observe(command("a.x", success=a), second)
        converter.observe(command("b.y", success=b), second)
    totals: dict[str, int] = {}
    for sample in converter.take(2**62):
        totals[sample.name] = totals.get(sample.name, 0) + sample.counts.get("success", 0)
    assert totals == {"a.x": 22, "b.y": 15}
    assert converter.resets == 1


def test_a_series_appearing_on_an_open_stream_is_exact_evidence() -> None:
    # Tracehouse and Hystrix list a command from its first call on: when it appears on a stream open
    # for a while its first counts are new events, and a restart right after is recognised
    appeared, at_connect = SnapshotDeltas(), SnapshotDeltas()
    for converter in (appeared, at_connect):
        converter.connected(100)
        deltas(rolling({104 if converter is appeared else 101: 10, 105: 10, 106: 2, 107: 3}), converter)
    assert (appeared.resets, appeared.clamped) == (1, 0)  # 10 + 2 + 1 counted
    # its first 10 may be old (believed 1 a second from 92 to 101), and so are the 4 after its gap (102–105):
    # 1 + 1 counted, the drops to 2 and 3 are clamps, not a reset
    assert (at_connect.resets, at_connect.clamped) == (0, 7 + 5)


def test_a_drop_that_roll_out_explains_is_not_a_reset() -> None:
    converter = SnapshotDeltas()
    seen = {100: 0, 101: 10} | dict.fromkeys(range(102, 109), 10) | {109: 0, 110: 0, 111: 4}
    got = deltas(rolling(seen), converter)
    # seen at 101, gone at 109: early (as an emitter's own bucketing may make it), not a restart
    assert {s: c for s, c in got.items() if c} == {101: {"success": 10}, 111: {"success": 4}}
    assert converter.resets == 0


def test_the_first_snapshot_counts_its_seconds_share_and_is_no_evidence_of_a_reset() -> None:
    # the window of 50 is believed 5 a second over 91–100: only 100's share is counted; the rest rolls
    # out as believed (faster, even), so it was from before the collector watched
    converter = SnapshotDeltas()
    got = deltas(rolling({100: 50, 101: 40, 102: 30, 105: 0, 110: 0, 111: 0}), converter)
    assert {s: c for s, c in got.items() if c} == {100: {"success": 5}}
    assert converter.resets == 0


def test_the_rest_of_a_first_window_is_counted_once_it_outstays_the_belief() -> None:
    # 1000 shown from 100 to 109: 100 at 100, and 100 each time a believed second leaves while the
    # window still shows them — steady load (and then 110 shows 1000 again) or one burst just before
    # 100 (then 110 shows 0): either way nothing is counted twice
    assert deltas(rolling(dict.fromkeys(range(100, 110), 1000))) == {s: {"success": 100} for s in range(100, 110)}


def test_after_a_gap_what_the_window_shows_is_believed_spread_over_the_gap() -> None:
    got = deltas(rolling({100: 0, 101: 5, 102: 5, 130: 2, 131: 6}))
    # the 2 are believed at 125 and 130 (1 a second spread over 121–130): 130's is counted
    assert {s: c for s, c in got.items() if c} == {101: {"success": 5}, 130: {"success": 1}, 131: {"success": 4}}


def test_steady_load_across_a_reconnect_gap_stays_steady() -> None:
    converter = SnapshotDeltas()
    converter.connected(90)
    seen = {90: 0} | {90 + s: 10 * min(s, 10) for s in range(1, 21)} | dict.fromkeys(range(115, 140), 100)
    got = deltas(rolling(seen), converter)
    # 111–114 unwatched: what the window shows at 115 beyond the belief is believed 10 a second over them
    assert [got[s] for s in range(115, 140)] == [{"success": 10}] * 25
    assert converter.clamped == 0


def test_a_shorter_window_rolls_out_sooner() -> None:
    script = [(s, command(window_ms=5000, success=n)) for s, n in {100: 0, 101: 3, 105: 3, 106: 1}.items()]
    # the 3 of 101 left at 106 (W = 5): 1 is new
    assert {s: c for s, c in deltas(script).items() if c} == {101: {"success": 3}, 106: {"success": 1}}


def test_a_clock_step_back_counts_into_the_latest_second() -> None:
    assert deltas([*rolling({100: 0, 102: 4}), (101, command(success=6))]) == {100: {}, 102: {"success": 6}}


def test_counters_missing_from_a_snapshot_are_left_alone() -> None:
    script = [(100, command(success=0, failure=0)), (101, command(success=2, failure=1)), (102, command(success=3))]
    assert deltas(script) == {100: {}, 101: {"success": 2, "failure": 1}, 102: {"success": 1}}


# -- fields ----------------------------------------------------------------------------------

OPOSSUM = {  # as opossum-hystrix 0.0.1 sends it (trimmed): floats, keys in JS order, bad requests = failures
    "type": "HystrixCommand",
    "name": "inventory.lookup",
    "group": "inventory",
    "currentTime": 1795637343162,
    "isCircuitBreakerOpen": True,
    "errorPercentage": 23.333333333333332,
    "errorCount": 7,
    "requestCount": 30,
    "rollingCountBadRequests": 7,
    "rollingCountFailure": 7.0,
    "rollingCountShortCircuited": 3,
    "rollingCountSuccess": 20.0,
    "rollingCountTimeout": 2,
    "rollingCountSemaphoreRejected": 0,
    "currentConcurrentExecutionCount": 0,
    "rollingMaxConcurrentExecutionCount": 0,
    "latencyExecute_mean": 6.9655172413793105,
    "latencyExecute": {"0": 0, "25": 0, "50": 0, "75": 0, "90": 50, "95": 51, "99": 51, "100": 51, "99.5": 51},
    "propertyValue_circuitBreakerForceOpen": False,
    "propertyValue_circuitBreakerForceClosed": False,
    "propertyValue_circuitBreakerEnabled": True,
    "propertyValue_executionIsolationThreadPoolKeyOverride": None,
    "propertyValue_metricsRollingStatisticalWindowInMilliseconds": 10000,
    "propertyValue_requestCacheEnabled": False,
    "reportingHosts": 1,
}


def only_sample(event: dict[str, Any], second: int = 100) -> BreakerSample:
    """The sample of a series first seen on a stream open for a while: its window counted at once."""
    converter = SnapshotDeltas()
    converter.connected(second - MAX_GAP - 1)
    assert converter.observe(event, second)
    [sample] = converter.take(second + 1)
    return sample


def test_an_opossum_event_with_its_quirks() -> None:
    sample = only_sample(OPOSSUM)
    assert sample.kind == "command"
    assert (sample.name, sample.group, sample.second, sample.state) == ("inventory.lookup", "inventory", 100, "OPEN")
    assert dict(sample.counts) == {"success": 20, "failure": 7, "timeout": 2, "short_circuited": 3, "bad_request": 7}
    assert all(type(n) is int for n in sample.counts.values())
    # 29 timed calls (success + failure + timeout) spread over the percentiles: ranks 1–22 at p0–p75
    # (0 ms), 23–26 at p90 (50 ms), 27–29 at p95 and p99 (51 ms)
    assert dict(sample.latency) == {bucket_of(0): 22, bucket_of(50): 4, bucket_of(51): 3}
    assert sample.latency_sum_ms == pytest.approx(6.9655172413793105 * 29)
    assert dict(sample.properties) == {
        "circuitBreakerForceOpen": False,
        "circuitBreakerForceClosed": False,
        "circuitBreakerEnabled": True,
        "metricsRollingStatisticalWindowInMilliseconds": 10000,
        "requestCacheEnabled": False,
    }


def test_a_bare_event_gets_the_defaults() -> None:
    sample = only_sample({"type": "HystrixCommand", "name": "payments.charge"})
    assert sample == BreakerSample(kind="command", name="payments.charge", group="payments", second=100)


def test_numbers_are_taken_in_any_form_and_nonsense_is_ignored() -> None:
    event = command(success="12", failure=True, timeout=-1, short_circuited=2.6, bad_request=float("nan"))
    event["currentConcurrentExecutionCount"] = 3.0
    event["rollingMaxConcurrentExecutionCount"] = "5"
    event["propertyValue_metricsRollingStatisticalWindowInMilliseconds"] = "10000"
    sample = only_sample(event)
    assert dict(sample.counts) == {"success": 12, "short_circuited": 3}
    assert (sample.concurrency, sample.max_concurrency) == (3, 5)


@pytest.mark.parametrize(
    ("fields", "state"),
    [
        ({"isCircuitBreakerOpen": False}, "CLOSED"),
        ({"isCircuitBreakerOpen": True}, "OPEN"),
        ({"isCircuitBreakerOpen": "true"}, "OPEN"),
        ({"isCircuitBreakerOpen": 3, "reportingHosts": 3}, "OPEN"),  # aggregated: every host open
        ({"isCircuitBreakerOpen": 0, "reportingHosts": 3}, "CLOSED"),
        ({"isCircuitBreakerOpen": {"true": 2, "false": 1}, "reportingHosts": 3}, "OPEN"),  # hosts disagree
        ({"isCircuitBreakerOpen": {"true": 1, "false": 2}, "reportingHosts": 3}, "CLOSED"),
        ({"isCircuitBreakerOpen": True, "propertyValue_circuitBreakerForceOpen": True}, "FORCED_OPEN"),
        ({"isCircuitBreakerOpen": True, "propertyValue_circuitBreakerForceClosed": True}, "FORCED_CLOSED"),
        ({"isCircuitBreakerOpen": False, "propertyValue_circuitBreakerEnabled": False}, "DISABLED"),
    ],
)
def test_state(fields: dict[str, Any], state: str) -> None:
    assert only_sample({**command(), **fields}).state == state


def test_a_thread_pool_event() -> None:
    pool = {
        "type": "HystrixThreadPool",
        "name": "inventory",
        "currentTime": 1795637397698,
        "currentActiveCount": 1,
        "currentCompletedTaskCount": 5,
        "currentCorePoolSize": 2,
        "currentLargestPoolSize": 2,
        "currentMaximumPoolSize": 2,
        "currentPoolSize": 2,
        "currentQueueSize": 0,
        "currentTaskCount": 6,
        "rollingCountThreadsExecuted": 5,
        "rollingMaxActiveThreads": 2,
        "rollingCountCommandRejections": 1,
        "propertyValue_queueSizeRejectionThreshold": 5,
        "propertyValue_metricsRollingStatisticalWindowInMilliseconds": 10000,
        "reportingHosts": 1,
    }
    converter = SnapshotDeltas()
    converter.connected(90)
    converter.observe(pool, 100)
    converter.observe({**pool, "rollingCountThreadsExecuted": 9, "currentActiveCount": 0}, 101)
    first, second = converter.take(102)
    assert (first.kind, first.name, first.group) == ("threadpool", "inventory", "inventory")
    assert dict(first.counts) == {"success": 5, "thread_pool_rejected": 1}
    assert dict(second.counts) == {"success": 4}
    assert (second.concurrency, second.max_concurrency) == (0, 2)
    assert dict(second.gauges) == {
        "currentActiveCount": 0.0,
        "currentCompletedTaskCount": 5.0,
        "currentCorePoolSize": 2.0,
        "currentLargestPoolSize": 2.0,
        "currentMaximumPoolSize": 2.0,
        "currentPoolSize": 2.0,
        "currentQueueSize": 0.0,
        "currentTaskCount": 6.0,
        "propertyValue_queueSizeRejectionThreshold": 5.0,
    }
    assert dict(second.properties) == {
        "queueSizeRejectionThreshold": 5,
        "metricsRollingStatisticalWindowInMilliseconds": 10000,
    }
    assert second.latency == {}


def test_an_aggregated_stream_is_divided_by_its_reporting_hosts() -> None:
    # Turbine 1 / Tracehouse's turbine.stream multiply window, mean and percentiles by reportingHosts
    event = command(window_ms=20_000, success=4)
    event.update(reportingHosts=2, latencyExecute_mean=20.0, latencyExecute={"50": 20.0, "100": 40.0})
    sample = only_sample(event)
    assert dict(sample.latency) == {bucket_of(10.0): 2, bucket_of(20.0): 2}
    assert sample.latency_sum_ms == pytest.approx(40.0)
    converter = SnapshotDeltas()
    converter.connected(90)
    for second, n in {100: 4, 109: 4, 110: 5}.items():
        converter.observe({**event, "rollingCountSuccess": n}, second)
    assert [dict(s.counts) for s in converter.take(111)] == [{"success": 4}, {}, {"success": 5}]  # W = 10


def test_events_of_other_types_are_ignored_and_nameless_ones_refused() -> None:
    converter = SnapshotDeltas()
    assert converter.observe({"type": "meta", "reportingHostsLast10Seconds": 3}, 100) is False
    assert converter.observe({"name": "no.type"}, 100) is False
    for bad in (
        {"type": "HystrixCommand"},
        {"type": "HystrixCommand", "name": ""},
        {"type": "HystrixThreadPool", "name": 7},
    ):
        with pytest.raises(ValueError, match="without a usable name"):
            converter.observe(bad, 100)
    assert converter.take(2**62) == []


def test_take_hands_out_finished_seconds_once() -> None:
    converter = SnapshotDeltas()
    converter.observe(command(success=1), 100)
    converter.observe(command("other.x", success=1), 100)
    converter.observe(command(success=2), 101)
    assert converter.take(100) == []
    assert sorted(s.name for s in converter.take(101)) == ["other.x", "payments.charge"]
    assert converter.take(101) == []
    [sample] = converter.take(102)
    assert (sample.second, dict(sample.counts)) == (101, {"success": 1})


def test_a_series_gone_for_an_hour_is_forgotten() -> None:
    converter = SnapshotDeltas()
    converter.connected(90)
    converter.observe(command(success=7), 100)
    assert len(converter.take(101)) == 1
    assert converter.series == 1
    converter.take(100 + 3601)
    assert converter.series == 0
    converter.observe(command(success=7), 100 + 3602)
    [sample] = converter.take(2**62)
    assert dict(sample.counts) == {"success": 7}  # a new series on an open stream: its window counts at once


scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
field_values = scalars | st.sampled_from(["12", "-3", "1e400", "nan", "true"]) | st.integers(0, 50)
hystrix_fields = st.sampled_from(
    [*FIELDS.values(), "name", "group", "isCircuitBreakerOpen", "currentConcurrentExecutionCount",
     "rollingMaxConcurrentExecutionCount", "latencyExecute_mean", "reportingHosts", "threadPool",
     "propertyValue_metricsRollingStatisticalWindowInMilliseconds", "propertyValue_circuitBreakerForceOpen",
     "propertyValue_circuitBreakerEnabled", "rollingCountThreadsExecuted", "rollingCountCommandRejections",
     "currentActiveCount", "currentQueueSize", "rollingMaxActiveThreads", "propertyValue_x"]
)  # fmt: skip
events = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["HystrixCommand", "HystrixThreadPool", "meta", 3]),
        "name": st.sampled_from(["a.b", ".x", "p"]),
    },
    optional={
        "latencyExecute": st.dictionaries(
            st.text(max_size=6) | st.sampled_from(["0", "50", "99.5", "100"]), field_values
        )
    },
).flatmap(lambda base: st.dictionaries(hystrix_fields, field_values, max_size=12).map(lambda extra: {**extra, **base}))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), events), max_size=12))
def test_any_sequence_of_events_makes_valid_reports(steps: list[tuple[int, dict[str, Any]]]) -> None:
    """Whatever the stream sends, the samples are valid report samples: counts are non-negative ints."""
    converter = SnapshotDeltas()
    second = int(time.time()) - 60
    for step, event in steps:
        second += step
        try:
            converter.observe(event, second)
        except ValueError:
            continue
    samples = converter.take(2**62)
    report = BreakerReport("svc", "host:1", "svc", tuple(samples))
    body = json.loads(json.dumps(report.to_json(), allow_nan=False))
    assert BreakerReport.from_json(body) == report
    assert converter.clamped >= 0


# -- latency ---------------------------------------------------------------------------------

LEVELS = [0, 250, 500, 750, 900, 950, 990, 995, 1000]


@pytest.mark.parametrize(
    ("calls", "expected"),
    [
        (1, {50.0: 1}),
        (2, {25.0: 1, 75.0: 1}),
        (4, {25.0: 1, 50.0: 1, 75.0: 1, 90.0: 1}),
        (100, {25.0: 25, 50.0: 25, 75.0: 25, 90.0: 15, 95.0: 5, 99.0: 4, 99.5: 1}),
    ],
)
def test_calls_are_spread_over_the_percentile_points(calls: int, expected: dict[float, int]) -> None:
    # each percentile's latency is a different millisecond value equal to its level
    points = [(level, level / 10) for level in LEVELS]
    assert spread_latency(calls, points) == merge({bucket_of(ms): n} for ms, n in expected.items())


def test_the_spread_histogram_reads_back_the_stream_percentiles() -> None:
    stream = {"0": 1.0, "25": 2.0, "50": 3.0, "75": 5.0, "90": 8.0, "95": 13.0, "99": 21.0, "99.5": 34.0, "100": 55.0}
    event = {**command(success=1000), "latencyExecute": stream, "latencyExecute_mean": 4.0}
    read_back = percentiles_ms(only_sample(event).latency)
    for key in ("25", "50", "75", "90", "95", "99", "99.5", "100"):
        assert read_back[key] == pytest.approx(stream[key], rel=0.02), key


def test_latency_without_percentiles_is_the_mean() -> None:
    sample = only_sample({**command(success=3, failure=1, short_circuited=5), "latencyExecute_mean": 7.5})
    assert dict(sample.latency) == {bucket_of(7.5): 4}
    assert sample.latency_sum_ms == pytest.approx(30.0)
    assert only_sample(command(success=3)).latency == {}


# -- targets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "url", "instance"),
    [
        (
            "http://orders-1:8080/hystrix.stream",
            PullTarget("orders-1", "http", "orders-1", 8080, "/hystrix.stream"),
            "http://orders-1:8080/hystrix.stream",
            "orders-1:8080",
        ),
        (
            " shop = https://10.0.0.7/actuator/hystrix.stream?delay=500 ",
            PullTarget("shop", "https", "10.0.0.7", 443, "/actuator/hystrix.stream?delay=500"),
            "https://10.0.0.7:443/actuator/hystrix.stream?delay=500",
            "10.0.0.7:443",
        ),
        (
            "http://[::1]:9000",
            PullTarget("::1", "http", "::1", 9000, "/hystrix.stream"),
            "http://[::1]:9000/hystrix.stream",
            "[::1]:9000",
        ),
        (
            "http://host:1/turbine.stream?cluster=a=b",
            PullTarget("host", "http", "host", 1, "/turbine.stream?cluster=a=b"),
            "http://host:1/turbine.stream?cluster=a=b",
            "host:1",
        ),
        (
            "orders=dns+http://orders.shop.svc:8080/hystrix.stream",
            PullTarget("orders", "http", "orders.shop.svc", 8080, "/hystrix.stream", resolve=True),
            "http://orders.shop.svc:8080/hystrix.stream",
            "orders.shop.svc:8080",
        ),
    ],
)
def test_parse_target(text: str, expected: PullTarget, url: str, instance: str) -> None:
    target = parse_target(text)
    assert target == expected
    assert (target.url(), target.instance()) == (url, instance)


def test_a_dns_target_streams_from_each_address() -> None:
    target = parse_target("dns+http://orders:8080/hystrix.stream")
    assert target.url("10.1.2.3") == "http://10.1.2.3:8080/hystrix.stream"
    assert target.instance("fd00::3") == "[fd00::3]:8080"
    assert str(target) == "orders=dns+http://orders:8080/hystrix.stream"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "no URL"),
        ("orders-1:8080", "no URL"),
        ("orders=", "no URL"),
        ("=http://a:1/x", "the cluster must be"),
        ("my shop=http://a:1/x", "the cluster must be"),
        ("ftp://a:1/x", "scheme 'ftp' is not supported"),
        ("dns+https://a:1/x", "scheme 'dns+https' is not supported"),
        ("http://a:99999/x", "the port is not a number"),
        ("http://a:port/x", "the port is not a number"),
        ("http://a:0/x", "the port is not a number"),
        ("http:///hystrix.stream", "no host"),
        ("http://user:secret@a:1/x", "credentials in the URL"),
        ("http://a b:1/x", "is not a host name"),
        ("http://[::1:1/x", "Invalid IPv6 URL"),
    ],
)
def test_bad_targets_are_refused_with_the_reason(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match="hystrix target") as error:
        parse_target(text)
    assert problem in str(error.value)


@pytest.mark.parametrize(
    "text",
    [
        "shop=http://user:pw@10.0.0.5:8080/hystrix.stream",
        "http://user:p@ss@a:1/x",
        "shop=dns+http://user:pw@a:1/x",
        "http://user:pw@a:port/x",  # refused for the port first: still no password shown
        "http://user:pw/ss@a:1/x",  # a slash in the password
        "http://user:p wss@a:1/x",  # a space
    ],
)
def test_a_refused_target_never_shows_its_password(text: str) -> None:
    with pytest.raises(ValueError, match="hystrix target") as error:
        parse_target(text)
    message = str(error.value)
    assert "user:***@" in message
    assert "pw" not in message
    assert "p@ss" not in message
    assert "wss" not in message


def test_read_targets_file(tmp_path: Path) -> None:
    path = tmp_path / "targets"
    path.write_text("# Java services\nhttp://a:1/hystrix.stream  # the old one\n\n  shop=dns+http://b:2/s\n")
    assert read_targets_file(path) == [parse_target("http://a:1/hystrix.stream"), parse_target("shop=dns+http://b:2/s")]
    path.write_text("http://a:1/x\nnot a target\n")
    with pytest.raises(ValueError, match=r"targets:2: hystrix target 'not a target': no URL"):
        read_targets_file(path)


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        ({"min_backoff": 0}, "min_backoff"),
        ({"max_backoff": 0.1}, "max_backoff"),
        ({"resolve_interval": -1}, "resolve_interval"),
    ],
)
def test_puller_settings_are_checked(settings: dict[str, float], name: str) -> None:
    async def sink(report: BreakerReport) -> None:
        pass

    with pytest.raises(ValueError, match=f"setting {name}"):
        HystrixPuller(["http://a:1/x"], sink, **settings)
    with pytest.raises(ValueError, match="hystrix target"):
        HystrixPuller(["a:1"], sink)


# -- SSE -------------------------------------------------------------------------------------

STREAM = (
    b"retry: 10000\nevent: connecttime\n"
    b'data: {"a": 1}\n\n'
    b"ping: \n\n"
    b": a comment\n"
    b'data: {"b":\r\ndata: "\xc3\xa9"}\r\n\r\n'
    b'data:{"c": 3}\n\n'
    b'data: {"partial"'
)


def test_sse_events_whole_or_split_at_any_byte() -> None:
    expected = ['{"a": 1}', '{"b":\n"é"}', '{"c": 3}']
    whole = SseParser()
    assert whole.feed(STREAM) == expected
    assert whole.keepalives == 1
    split = SseParser()
    assert [event for i in range(len(STREAM)) for event in split.feed(STREAM[i : i + 1])] == expected
    assert split.feed(b": 2}\n\n") == ['{"partial": 2}']


def test_an_oversized_line_is_dropped_and_counted() -> None:
    parser = SseParser(max_line=100)
    assert parser.feed(b"data: " + b"x" * 150) == []
    assert parser.feed(b"x" * 150) == []
    assert parser.feed(b'xx\n\ndata: {"ok": 1}\n\n') == ['{"ok": 1}']
    assert parser.oversized == 1


def test_two_streams_on_one_host_and_port_are_two_instances() -> None:
    # As host:port both reported as one instance, and overwrote each other's seconds in the store.
    targets = [parse_target(t) for t in ("http://app:8080/hystrix.stream", "http://app:8080/admin/hystrix.stream",
                                         "http://other:8080/hystrix.stream", "shop=http://app:8080/x")]  # fmt: skip
    puller = HystrixPuller(targets, lambda report: None)
    assert [t.instance() for t in puller.targets] == [
        "app:8080/hystrix.stream", "app:8080/admin/hystrix.stream", "other:8080", "app:8080"
    ]  # fmt: skip
    dns = HystrixPuller([parse_target(t) for t in ("shop=dns+http://app:8080/a", "shop=http://10.0.0.5:8080/b")], print)
    assert [t.instance("10.0.0.5") for t in dns.targets] == ["10.0.0.5:8080/a", "10.0.0.5:8080/b"]
    # a DNS name and another named host cannot be one address (review: both got their paths)
    named = HystrixPuller([parse_target(t) for t in ("c=http://a:1/x", "c=dns+http://b:1/y")], print)
    assert [t.instance() for t in named.targets] == ["a:1", "b:1"]
    # the Host header names the host alone (review: `Host: app:8080/a` — Tomcat answers 400)
    assert _Stream(dns.targets[0], "10.0.0.5").headers["Host"] == "app:8080"


def test_a_target_listed_twice_is_refused() -> None:
    with pytest.raises(ValueError, match=r"hystrix target app=http://app:8080/hystrix.stream is listed twice"):
        HystrixPuller([parse_target("http://app:8080/hystrix.stream")] * 2, print)
