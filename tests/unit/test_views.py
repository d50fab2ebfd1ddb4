"""Trace post-processing: tree order of spans, robust to orphans and cycles."""

from __future__ import annotations

from tracehouse.query.views import tree_order
from tracehouse.storage import Span


def span(span_id: str, parent: str, start: int) -> Span:
    return Span(
        start, "t" * 32, span_id, parent, "", span_id, "Internal", "svc", {}, "", "", {}, 1, "Unset", "", (), ()
    )


def order(spans: list[Span]) -> list[tuple[str, int]]:
    return [(s.span_id, depth) for s, depth in tree_order(spans)]


def test_parents_before_children_siblings_by_start() -> None:
    spans = [span("c2", "root", 30), span("root", "", 0), span("c1", "root", 10), span("g1", "c1", 20)]
    assert order(spans) == [("root", 0), ("c1", 1), ("g1", 2), ("c2", 1)]


def test_a_span_whose_parent_is_missing_is_a_root() -> None:
    spans = [span("a", "", 5), span("orphan", "gone", 1)]
    assert order(spans) == [("orphan", 0), ("a", 0)]


def test_a_parent_cycle_keeps_every_span() -> None:
    spans = [span("x", "y", 1), span("y", "x", 2), span("self", "self", 3)]
    assert sorted(order(spans)) == [("self", 0), ("x", 0), ("y", 0)]
