"""The critical path of a trace: the chain of work the trace's end waited on (as jaeger-ui's).

From the root's end, walk back: the child that finished last before the cursor was on the path,
its own children likewise; the time no child covers belongs to the span itself. Iterative, so
traces of any depth are fine; children overlapping the cursor are cut at it.
"""

from __future__ import annotations

from dataclasses import dataclass

from tracehouse.storage import Span

__all__ = ["Segment", "critical_path"]


@dataclass(frozen=True, slots=True)
class Segment:
    span_id: str
    start_ns: int
    end_ns: int


def critical_path(spans: list[Span]) -> list[Segment]:
    """Segments of the critical path, latest first; ``[]`` for an empty trace."""
    if not spans:
        return []
    by_id = {s.span_id: s for s in spans}
    children: dict[str, list[Span]] = {}
    roots = []
    for span in spans:
        if span.parent_span_id in by_id and span.parent_span_id != span.span_id:
            children.setdefault(span.parent_span_id, []).append(span)
        else:
            roots.append(span)
    root = max(roots or spans, key=_end)
    segments: list[Segment] = []
    stack = [(root, _end(root))]
    seen: set[str] = set()
    while stack:
        span, cursor = stack.pop()
        if span.span_id in seen:
            continue
        seen.add(span.span_id)
        cursor = min(cursor, _end(span))
        for child in sorted(children.get(span.span_id, []), key=_end, reverse=True):
            if child.timestamp_ns >= cursor or _end(child) <= span.timestamp_ns:
                continue
            child_end = min(_end(child), cursor)
            if child_end < cursor:
                segments.append(Segment(span.span_id, child_end, cursor))
            cursor = max(child.timestamp_ns, span.timestamp_ns)
            stack.append((child, child_end))
        if cursor > span.timestamp_ns:
            segments.append(Segment(span.span_id, span.timestamp_ns, cursor))
    return sorted(segments, key=lambda s: s.end_ns, reverse=True)


def _end(span: Span) -> int:
    return span.timestamp_ns + span.duration_ns
