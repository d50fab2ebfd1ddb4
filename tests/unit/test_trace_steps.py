"""Trace post-processing steps: clock-skew adjustment and the critical path."""

from __future__ import annotations

import pytest

from tracehouse.query.critical_path import Segment, critical_path
from tracehouse.query.skew import adjust_clock_skew
from tracehouse.query.views import trace_json
from tracehouse.storage import Event, Span

MS = 1_000_000


def span(
    span_id: str,
    parent: str,
    start: int,
    duration: int,
    service: str = "a",
    kind: str = "Internal",
    resource: dict[str, str] | None = None,
) -> Span:
    events = (Event(start + 1, "e", {}),)
    return Span(
        start, "t" * 32, span_id, parent, "", span_id, kind, service, resource or {}, "", "", {}, duration, "Unset", "",
        events, (),
    )  # fmt: skip


def timed_out_call(host: str | None) -> list[Span]:
    """QA's demo trace: gw's call to orders gives up at 500.2 ms, while orders (and payments, which
    it called) run on — one clock for all, on ``host`` (or no host attribute at all)."""
    on = {"host.name": host} if host else {}
    return [
        span("root", "", 0, 501 * MS, "gw", "Server", on),
        span("call", "root", MS // 10, 500_100_000, "gw", "Client", on),  # 0.1 .. 500.2 ms: timed out
        span("srv", "call", 6_181_000, 694 * MS, "orders", "Server", on),  # 6.181 .. 700.181 ms
        span("charge", "srv", 7 * MS, 688 * MS, "orders", "Client", on),
        span("pay", "charge", 8_152_000, 682 * MS, "payments", "Server", on),
    ]


def test_a_server_child_on_a_skewed_clock_is_centred_in_its_client_parent() -> None:
    spans = [
        span("root", "", 1000, 100, "gw", "Server"),
        span("call", "root", 1010, 80, "gw", "Client"),
        span("srv", "call", 500, 40, "orders", "Server"),  # orders' clock is 530 ns behind
        span("db", "srv", 510, 10, "orders", "Client"),  # same clock as srv: moves with it
        span("async", "root", 1200, 10, "gw", "Internal"),  # same service: never moved
    ]
    adjusted, warnings = adjust_clock_skew(spans)
    by_id = {s.span_id: s for s in adjusted}
    assert by_id["srv"].timestamp_ns == 1010 + (80 - 40) // 2
    assert by_id["db"].timestamp_ns == 510 + (1030 - 500)
    assert by_id["srv"].events[0].timestamp_ns == by_id["srv"].timestamp_ns + 1
    assert by_id["async"].timestamp_ns == 1200
    assert set(warnings) == {"srv"}
    assert "moved +0.001 ms" in warnings["srv"]


def test_a_child_inside_its_parent_is_left_alone() -> None:
    spans = [span("call", "", 0, 100, "gw", "Client"), span("srv", "call", 10, 50, "orders", "Server")]
    adjusted, warnings = adjust_clock_skew(spans)
    assert adjusted == spans
    assert warnings == {}


@pytest.mark.parametrize("host", ["demo-1", None])
def test_a_server_child_that_outlives_its_timed_out_caller_is_not_skew(host: str | None) -> None:
    spans = timed_out_call(host)
    adjusted, warnings = adjust_clock_skew(spans)
    assert warnings == {}
    assert adjusted == spans  # the callee, and its own callee below it, where they were measured


def test_the_critical_path_keeps_the_timed_out_call_and_cuts_its_callee_at_the_call_s_end() -> None:
    body = trace_json("t" * 32, timed_out_call("demo-1"))
    path = [(p["spanId"], int(p["startTimeUnixNano"]), int(p["endTimeUnixNano"])) for p in body["criticalPath"]]
    assert path == [
        ("root", 500_200_000, 501 * MS),
        ("pay", 8_152_000, 500_200_000),  # the caller stopped waiting at 500.2 ms
        ("charge", 7 * MS, 8_152_000),
        ("srv", 6_181_000, 7 * MS),
        ("call", MS // 10, 6_181_000),  # the call's own time, until orders started
        ("root", 0, MS // 10),
    ]
    assert all(s["onCriticalPath"] and not s["warnings"] for s in body["spans"])


def test_spans_on_one_host_share_its_clock_and_are_never_moved_against_each_other() -> None:
    same = {"host.name": "h1"}
    spans = [
        span("call", "", 1000, 100, "gw", "Client", same),
        span("srv", "call", 900, 40, "orders", "Server", same),  # before its caller: not a clock's doing
    ]
    adjusted, warnings = adjust_clock_skew(spans)
    assert adjusted == spans
    assert warnings == {}


def test_a_child_on_another_host_that_starts_outside_its_parent_is_moved_inside() -> None:
    a, b, c = {"host.name": "a"}, {"host.name": "b"}, {"host.ip": "10.0.0.3"}
    spans = [
        span("root", "", 1000, 1000, "gw", "Server", a),
        span("early", "root", 1000, 100, "gw", "Client", a),
        span("e-srv", "early", 500, 40, "orders", "Server", b),  # before its caller: centred
        span("e-db", "e-srv", 510, 10, "orders", "Client", b),  # same clock as e-srv: moves with it
        span("late", "root", 1200, 100, "gw", "Client", a),
        span("l-srv", "late", 9000, 40, "orders", "Server", b),  # after its caller ended: centred
        span("long", "root", 1400, 100, "gw", "Client", a),
        span("g-srv", "long", 1300, 400, "stock", "Server", c),  # longer than its caller: starts with it
    ]
    adjusted, warnings = adjust_clock_skew(spans)
    start = {s.span_id: s.timestamp_ns for s in adjusted}
    assert start["e-srv"] == 1000 + 30
    assert start["e-db"] == 510 + 530
    assert start["l-srv"] == 1200 + 30
    assert start["g-srv"] == 1400
    assert set(warnings) == {"e-srv", "l-srv", "g-srv"}
    assert "moved +0.001 ms" in warnings["e-srv"]
    assert "moved -0.008 ms" in warnings["l-srv"]


def test_a_child_on_another_host_that_starts_inside_its_parent_and_outlives_it_is_left_alone() -> None:
    spans = [
        span("call", "", 1000, 100, "gw", "Client", {"host.name": "a"}),
        span("srv", "call", 1060, 80, "orders", "Server", {"host.name": "b"}),  # the caller gave up at 1100
    ]
    adjusted, warnings = adjust_clock_skew(spans)
    assert adjusted == spans
    assert warnings == {}


def test_another_service_on_a_moved_span_s_host_moves_with_it_without_a_warning() -> None:
    spans = [
        span("call", "", 1000, 100, "gw", "Client", {"host.name": "a"}),
        span("srv", "call", 500, 40, "orders", "Server", {"host.ip": "10.0.0.2"}),  # b's clock: 530 ns behind
        span("q", "srv", 505, 30, "orders", "Client", {"host.ip": "10.0.0.2"}),
        span("pg", "q", 510, 20, "postgres", "Server", {"host.ip": "10.0.0.2"}),  # on b too: same clock
    ]
    adjusted, warnings = adjust_clock_skew(spans)
    assert [s.timestamp_ns for s in adjusted] == [1000, 1030, 1035, 1040]
    assert set(warnings) == {"srv"}


def test_critical_path_follows_the_last_finishing_children() -> None:
    # root 0..100; a 10..40 and b 20..90 run in parallel; b waits on c 30..80.
    spans = [
        span("root", "", 0, 100),
        span("a", "root", 10, 30),
        span("b", "root", 20, 70),
        span("c", "b", 30, 50),
    ]
    assert critical_path(spans) == [
        Segment("root", 90, 100),
        Segment("b", 80, 90),
        Segment("c", 30, 80),
        Segment("b", 20, 30),
        Segment("a", 10, 20),  # before b started, the root was waiting on a
        Segment("root", 0, 10),
    ]


def test_trace_json_marks_the_path_and_the_warnings() -> None:
    spans = [span("call", "", 1000, 100, "gw", "Client"), span("srv", "call", 0, 50, "orders", "Server")]
    body = trace_json("t" * 32, spans)
    srv = next(s for s in body["spans"] if s["spanId"] == "srv")
    assert srv["warnings"]
    assert srv["startTimeUnixNano"] == str(1025)
    assert srv["onCriticalPath"] is True
    assert {p["spanId"] for p in body["criticalPath"]} == {"call", "srv"}


def test_a_deep_trace_does_not_recurse() -> None:
    spans = [span("s0", "", 0, 10_000)] + [span(f"s{i}", f"s{i - 1}", i, 10_000 - 2 * i) for i in range(1, 3000)]
    path = critical_path(spans)
    assert {s.span_id for s in path} == {f"s{i}" for i in range(3000)}
