"""Clock-skew adjustment of a trace (a step of trace post-processing, as Jaeger's adjuster).

A server span measured on another service's clock can appear outside the client span that
caused it. When that is obvious — a Server child of a Client parent, in another service, not
inside its parent — the child and the spans that share its clock are moved to sit centred in the
parent, and the child carries a warning. Never moves spans of the same service as their parent.
"""

from __future__ import annotations

import dataclasses

from tracehouse.storage import Span

__all__ = ["adjust_clock_skew"]


def adjust_clock_skew(spans: list[Span]) -> tuple[list[Span], dict[str, str]]:
    """Spans with corrected start times (and events), and a warning per adjusted span id."""
    by_id = {s.span_id: s for s in spans}
    children: dict[str, list[Span]] = {}
    for span in spans:
        if span.parent_span_id in by_id and span.parent_span_id != span.span_id:
            children.setdefault(span.parent_span_id, []).append(span)
    shift: dict[str, int] = {}
    warnings: dict[str, str] = {}
    stack = [s for s in spans if s.parent_span_id not in by_id or s.parent_span_id == s.span_id]
    seen: set[str] = set()
    while stack:
        parent = stack.pop()
        if parent.span_id in seen:
            continue
        seen.add(parent.span_id)
        start = parent.timestamp_ns + shift.get(parent.span_id, 0)
        for child in children.get(parent.span_id, []):
            inherited = shift.get(parent.span_id, 0) if child.service_name == parent.service_name else 0
            delta = _skew(parent, start, child, inherited)
            if delta != inherited:
                warnings[child.span_id] = (
                    f"clock skew: moved {(delta - inherited) / 1e6:+.3f} ms to sit inside its parent span"
                )
            shift[child.span_id] = delta
            stack.append(child)
    adjusted = [_moved(s, shift.get(s.span_id, 0)) for s in spans]
    return adjusted, warnings


def _skew(parent: Span, parent_start: int, child: Span, inherited: int) -> int:
    """The shift to give ``child``: ``inherited`` unless it is an obvious skew."""
    if child.service_name == parent.service_name or parent.kind != "Client" or child.kind != "Server":
        return inherited
    start = child.timestamp_ns + inherited
    if parent_start <= start and start + child.duration_ns <= parent_start + parent.duration_ns:
        return inherited
    slack = max(0, parent.duration_ns - child.duration_ns) // 2
    return parent_start + slack - child.timestamp_ns


def _moved(span: Span, delta: int) -> Span:
    if not delta:
        return span
    events = tuple(dataclasses.replace(e, timestamp_ns=e.timestamp_ns + delta) for e in span.events)
    return dataclasses.replace(span, timestamp_ns=span.timestamp_ns + delta, events=events)
