"""Clock-skew adjustment of a trace (a step of trace post-processing, as Jaeger's adjuster).

A Server span on another host's clock can start outside the Client span that called it; only then
is it (with the spans on its clock) moved inside, with a warning. Never moves a span against a
parent on its clock (same service or same host), nor one that merely outlived its parent.
"""

from __future__ import annotations

import dataclasses

from tracehouse.storage import Span

__all__ = ["adjust_clock_skew"]

#: Resource attributes naming a span's host, most specific first (Jaeger's host key).
_HOST_KEYS = ("host.id", "host.ip", "host.name")


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
        parent_shift = shift.get(parent.span_id, 0)
        for child in children.get(parent.span_id, []):
            if _same_clock(parent, child):
                shift[child.span_id] = parent_shift
            else:
                shift[child.span_id] = delta = _skew(parent, parent.timestamp_ns + parent_shift, child)
                if delta:
                    warnings[child.span_id] = f"clock skew: moved {delta / 1e6:+.3f} ms to sit inside its parent span"
            stack.append(child)
    adjusted = [_moved(s, shift.get(s.span_id, 0)) for s in spans]
    return adjusted, warnings


def _same_clock(parent: Span, child: Span) -> bool:
    """Whether the data says the two spans were timed by one clock: the same service (one process,
    as far as we can tell), or the same host by the first host attribute both carry, or else the
    same ``service.instance.id``. Unknown is not the same: such a child is checked."""
    if child.service_name == parent.service_name:
        return True
    ours, theirs = parent.resource_attributes, child.resource_attributes
    for key in _HOST_KEYS:
        if ours.get(key) and theirs.get(key):
            return ours[key] == theirs[key]
    instance = ours.get("service.instance.id")
    return bool(instance) and instance == theirs.get("service.instance.id")


def _skew(parent: Span, parent_start: int, child: Span) -> int:
    """The shift to give a ``child`` on its own clock: 0 unless it is a Server span of a Client
    parent that started before its caller did or after its caller had ended. One that started in
    time and ended after its caller is no skew: the caller stopped waiting (a timeout), the server
    did not know. A moved child is centred in its parent, or starts with it when it is longer."""
    if parent.kind != "Client" or child.kind != "Server":
        return 0
    if parent_start <= child.timestamp_ns <= parent_start + parent.duration_ns:
        return 0
    slack = max(0, parent.duration_ns - child.duration_ns) // 2
    return parent_start + slack - child.timestamp_ns


def _moved(span: Span, delta: int) -> Span:
    if not delta:
        return span
    events = tuple(dataclasses.replace(e, timestamp_ns=e.timestamp_ns + delta) for e in span.events)
    return dataclasses.replace(span, timestamp_ns=span.timestamp_ns + delta, events=events)
