"""Trace post-processing steps: clock-skew adjustment and the critical path."""

from __future__ import annotations

from tracehouse.query.critical_path import Segment, critical_path
from tracehouse.query.skew import adjust_clock_skew
from tracehouse.query.views import trace_json
from tracehouse.storage import Event, Span


def span(span_id: str, parent: str, start: int, duration: int, service: str = "a", kind: str = "Internal") -> Span:
    events = (Event(start + 1, "e", {}),)
    return Span(
        start, "t" * 32, span_id, parent, "", span_id, kind, service, {}, "", "", {}, duration, "Unset", "", events, ()
    )


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
