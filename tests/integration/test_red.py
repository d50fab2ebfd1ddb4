"""RED series on the real embedded store: per-minute rollup (steps of minutes) and raw spans
(shorter steps), checked against counts and nearest-rank quantiles computed here."""

from __future__ import annotations

import math
import time

import pytest

from tests.integration.test_search import MS, S, add_trace
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
