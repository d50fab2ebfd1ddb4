"""RED series on the real embedded store: per-minute rollup (steps of minutes) and raw spans
(shorter steps), checked against counts and nearest-rank quantiles computed here; the API's
answer of them: the running minute's rate, steps without calls."""

from __future__ import annotations

import math
import time

import pytest

from tests.integration.test_api_golden import Get, asgi_get
from tests.integration.test_search import MS, S, add_trace
from tracehouse.query import build_query_app
from tracehouse.storage import ClickHouseStore, RedQuery, SpanBatch

pytestmark = pytest.mark.integration

MINUTE_NS = 60 * 10**9
T0 = (time.time_ns() // (10 * MINUTE_NS) - 1) * 10 * MINUTE_NS  # aligned to 10 minutes, 10-20 minutes ago

#: minute offset -> (duration ms, error) of the api's "GET /items" server spans in it
CALLS = {0: [(10, False), (20, False), (30, True), (40, False)], 1: [], 2: [(5, True)], 3: [(7, False), (9, False)]}


@pytest.fixture
def seeded(store: ClickHouseStore) -> None:
    batch = SpanBatch()
    for minute, calls in CALLS.items():
        for i, (duration, error) in enumerate(calls):
            start = T0 + minute * MINUTE_NS + i * 1000 * MS
            add_trace(batch, start, [
                S("api", "GET /items", 0, duration, None, error=error),
                S("api", "SELECT items", 1, 1, 0, kind="Client"),  # not an entry span
            ])  # fmt: skip
    add_trace(batch, T0, [S("api", "GET /other", 0, 99, None)])
    add_trace(batch, T0, [S("web", "GET /items", 0, 99, None)])
    store.write(batch)


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def expected(minutes: list[int]) -> tuple[int, int, float, float]:
    calls = [c for m in minutes for c in CALLS.get(m, [])]
    durations = [d * MS for d, _ in calls]
    if not calls:
        return 0, 0, 0.0, 0.0
    return len(calls), sum(e for _, e in calls), nearest_rank(durations, 0.5), nearest_rank(durations, 0.99)


@pytest.mark.parametrize("step", [60, 120])
def test_rollup_steps(store: ClickHouseStore, seeded: None, step: int) -> None:
    query = RedQuery("api", T0, T0 + 5 * MINUTE_NS, step, operation="GET /items", span_kinds=())
    points = store.red(query)
    per_step = step // 60
    assert [p.start_ns for p in points] == [T0 + i * step * 10**9 for i in range(math.ceil(5 / per_step))]
    for i, point in enumerate(points):
        calls, errors, p50, p99 = expected(list(range(i * per_step, (i + 1) * per_step)))
        assert (point.calls, point.errors, point.p50_ns, point.p99_ns) == (calls, errors, p50, p99)


def test_raw_spans_for_steps_under_a_minute(store: ClickHouseStore, seeded: None) -> None:
    points = store.red(RedQuery("api", T0, T0 + 2 * MINUTE_NS, 30, operation="GET /items", span_kinds=()))
    assert [(p.calls, p.errors) for p in points] == [(4, 1), (0, 0), (0, 0), (0, 0)]
    assert points[0].p50_ns == 20 * MS


def test_operation_and_kind_filters(store: ClickHouseStore, seeded: None) -> None:
    every_kind = store.red(RedQuery("api", T0, T0 + MINUTE_NS, 60, span_kinds=()))
    assert [p.calls for p in every_kind] == [4 + 4 + 1]  # GET /items, SELECT items, GET /other
    entry_spans = store.red(RedQuery("api", T0, T0 + MINUTE_NS, 60))  # default: Server and Consumer
    assert [p.calls for p in entry_spans] == [4 + 1]
    assert [(p.calls, p.p50_ns) for p in store.red(RedQuery("nobody", T0, T0 + MINUTE_NS, 60))] == [(0, 0.0)]


def test_a_range_not_on_minutes_counts_only_its_own_spans(store: ClickHouseStore, seeded: None) -> None:
    two_s = 2 * 10**9
    points = store.red(RedQuery("api", T0 + two_s, T0 + MINUTE_NS + two_s, 60, operation="GET /items", span_kinds=()))
    assert sum(p.calls for p in points) == 2  # minute 0 has calls at 0, 1, 2 and 3 s: the rollup would say 4


def test_operation_stats_busiest_first(store: ClickHouseStore, seeded: None) -> None:
    found = store.operation_stats("api", T0, T0 + 5 * MINUTE_NS)
    assert [(o.name, o.kind, o.calls, o.errors) for o in found] == [
        ("GET /items", "Server", 7, 2),
        ("SELECT items", "Client", 7, 0),
        ("GET /other", "Server", 1, 0),
    ]
    calls, errors, p50, p99 = expected([0, 1, 2, 3])
    assert (found[0].calls, found[0].errors, found[0].p50_ns, found[0].p99_ns) == (calls, errors, p50, p99)
    assert store.operation_stats("nobody", T0, T0 + 5 * MINUTE_NS) == []


def api(store: ClickHouseStore) -> Get:
    return asgi_get(build_query_app(store, dict))


def mid_minute(earliest_s: float, latest_s: float = 60) -> int:
    """Now (ns), between `earliest_s` and `latest_s` into a minute: waits for the clock if it is not
    (so choose a wide span: the wait is the test's time). A test of the running minute needs some
    of it gone, and one that draws several things from it, some of it left."""
    into = time.time_ns() % MINUTE_NS / 1e9
    if not earliest_s <= into <= latest_s:
        time.sleep((earliest_s - into) % 60)
    return time.time_ns()


def running_rate(calls: int, minute_ns: int, before_ns: int, after_ns: int) -> tuple[float, float]:
    """Bounds of the rate of `calls` in the minute starting at `minute_ns`, asked between `before_ns`
    and `after_ns`: over its seconds gone then (its whole 60 s if it is over)."""
    gone = [min(60.0, max(1.0, (t - minute_ns) / 1e9)) for t in (after_ns, before_ns)]
    return calls / gone[0], calls / gone[1]


def test_the_running_minute_is_a_rate_over_its_seconds_gone(store: ClickHouseStore) -> None:
    """5 calls/s since the minute began: the newest point says 5/s, not calls / 60 s (a plunge).
    Should the minute end before the request, it is a whole one: the bounds say so too."""
    now = mid_minute(2)
    minute = now // MINUTE_NS * MINUTE_NS
    batch = SpanBatch()
    for at in range(minute, now, 200 * MS):
        add_trace(batch, at, [S("live", "GET /", 0, 10, None)])
    store.write(batch)
    before = time.time_ns()
    points = api(store)("/api/v1/metrics/red", {"service": "live"}).json()["points"]  # the last hour, whole minutes
    after = time.time_ns()
    (running,) = (p for p in points if int(p["startTimeUnixNano"]) == minute)
    assert running["calls"] == len(range(minute, now, 200 * MS))
    low, high = running_rate(running["calls"], minute, before, after)
    assert low <= running["rate"] <= high  # about 5/s; calls / 60 s would be under 3.4
    assert {p["rate"] for p in points if p is not running} == {0.0}


def test_the_rate_of_a_step_gone_by_is_over_the_whole_step(store: ClickHouseStore, seeded: None) -> None:
    params = {"service": "api", "operation": "GET /items", "spanKind": "all", "step": "2m"}
    span = {"start": str(T0 // 1000), "end": str((T0 + 4 * MINUTE_NS) // 1000)}
    points = api(store)("/api/v1/metrics/red", {**params, **span}).json()["points"]
    assert [(p["calls"], p["rate"]) for p in points] == [(4, 4 / 120), (3, 3 / 120)]


def test_a_step_without_calls_has_no_latency_nor_error_rate(store: ClickHouseStore, seeded: None) -> None:
    """Rate 0 (true), but errors and latency unknown: null, a gap in a chart, not 0 ms."""
    params = {"service": "api", "operation": "GET /items", "spanKind": "all", "step": "1m"}
    span = {"start": str(T0 // 1000), "end": str((T0 + 5 * MINUTE_NS) // 1000)}
    points = api(store)("/api/v1/metrics/red", {**params, **span}).json()["points"]
    assert [p["calls"] for p in points] == [4, 0, 1, 2, 0]
    for empty in (points[1], points[4]):
        assert empty == {
            "startTimeUnixNano": empty["startTimeUnixNano"], "rate": 0.0, "calls": 0, "errors": 0,
            "errorRate": None, "p50Nano": None, "p95Nano": None, "p99Nano": None,
        }  # fmt: skip
    assert (points[0]["errorRate"], points[0]["p50Nano"], points[2]["errorRate"]) == (0.25, 20 * MS, 1.0)
    assert points[3]["errorRate"] == 0.0  # calls, none failed: a measured 0
