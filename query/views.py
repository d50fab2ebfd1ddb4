"""Read-model objects -> native API JSON. Timestamps are nanosecond strings (as OTLP/JSON
writes int64), durations nanosecond integers."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tracehouse.query.critical_path import critical_path
from tracehouse.query.skew import adjust_clock_skew
from tracehouse.storage import (
    CallStats,
    Dependencies,
    DependencyLink,
    Operation,
    OperationStats,
    RedPoint,
    Span,
    TraceSummary,
)


def trace_json(trace_id: str, spans: list[Span]) -> dict[str, Any]:
    """A trace with its spans ordered as a tree (parents before children, siblings by start),
    clock skew adjusted (with a warning on each moved span) and the critical path marked."""
    spans, warnings = adjust_clock_skew(spans)
    ordered = tree_order(spans)
    path = critical_path(spans)
    on_path = {segment.span_id for segment in path}
    start = min(s.timestamp_ns for s in spans)
    end = max(s.timestamp_ns + s.duration_ns for s in spans)
    return {
        "traceId": trace_id,
        "startTimeUnixNano": str(start),
        "durationNano": end - start,
        "spanCount": len(spans),
        "services": sorted({s.service_name for s in spans}),
        "spans": [
            span_json(span, depth, warnings.get(span.span_id), span.span_id in on_path) for span, depth in ordered
        ],
        "criticalPath": [
            {"spanId": p.span_id, "startTimeUnixNano": str(p.start_ns), "endTimeUnixNano": str(p.end_ns)} for p in path
        ],
    }


def tree_order(spans: list[Span]) -> list[tuple[Span, int]]:
    """Depth-first order with each span's depth. Spans whose parent is missing are roots;
    spans caught in a parent cycle come last, at depth 0."""
    by_id = {s.span_id: s for s in spans}
    children: dict[str, list[Span]] = {}
    roots: list[Span] = []
    for span in spans:
        if span.parent_span_id and span.parent_span_id in by_id and span.parent_span_id != span.span_id:
            children.setdefault(span.parent_span_id, []).append(span)
        else:
            roots.append(span)
    ordered: list[tuple[Span, int]] = []
    seen: set[int] = set()
    stack = [(s, 0) for s in sorted(roots, key=_start, reverse=True)]
    while stack:
        span, depth = stack.pop()
        if id(span) in seen:
            continue
        seen.add(id(span))
        ordered.append((span, depth))
        kids = sorted(children.get(span.span_id, []), key=_start, reverse=True)
        stack.extend((kid, depth + 1) for kid in kids)
    ordered.extend((s, 0) for s in spans if id(s) not in seen)
    return ordered


def _start(span: Span) -> tuple[int, str]:
    return span.timestamp_ns, span.span_id


def span_json(span: Span, depth: int, warning: str | None = None, critical: bool = False) -> dict[str, Any]:
    return {
        "traceId": span.trace_id,
        "spanId": span.span_id,
        "parentSpanId": span.parent_span_id or None,
        "depth": depth,
        "name": span.name,
        "kind": span.kind,
        "serviceName": span.service_name,
        "startTimeUnixNano": str(span.timestamp_ns),
        "durationNano": span.duration_ns,
        "status": {"code": span.status_code, "message": span.status_message},
        "traceState": span.trace_state,
        "attributes": span.attributes,
        "resource": span.resource_attributes,
        "scope": {"name": span.scope_name, "version": span.scope_version},
        "events": [
            {"timeUnixNano": str(e.timestamp_ns), "name": e.name, "attributes": e.attributes} for e in span.events
        ],
        "links": [
            {"traceId": k.trace_id, "spanId": k.span_id, "traceState": k.trace_state, "attributes": k.attributes}
            for k in span.links
        ],
        "warnings": [] if warning is None else [warning],
        "onCriticalPath": critical,
    }


def operation_json(operation: Operation) -> dict[str, Any]:
    return {"name": operation.name, "spanKind": operation.span_kind, "spans": operation.spans}


def summary_json(summary: TraceSummary) -> dict[str, Any]:
    return {
        "traceId": summary.trace_id,
        "rootService": summary.root_service,
        "rootOperation": summary.root_operation,
        "startTimeUnixNano": str(summary.start_ns),
        "durationNano": summary.duration_ns,
        "spanCount": summary.span_count,
        "errorCount": summary.error_count,
        "services": [{"name": name, "spans": spans} for name, spans in summary.services],
    }


def stats_json(stats: CallStats) -> dict[str, Any]:
    return {
        "calls": stats.calls,
        "errors": stats.errors,
        "errorRate": stats.errors / stats.calls if stats.calls else 0.0,
        "p50Nano": stats.p50_ns,
        "p95Nano": stats.p95_ns,
        "p99Nano": stats.p99_ns,
    }


def red_json(point: RedPoint, step_s: int, now_ns: int | None = None) -> dict[str, Any]:
    """One step of a RED series: `{startTimeUnixNano, rate, calls, errors, errorRate, p50Nano,
    p95Nano, p99Nano}`. `rate` is calls per second of the step; of the step still running at
    `now_ns` (default: the clock), per second gone in it — the newest point is a rate over the
    time it covers, as a Prometheus rate() in Grafana or Jaeger's Monitor tab reads, not the
    current minute's calls over a whole minute (a fake plunge at the end of every chart). A step
    cut by a range not on whole steps is still divided by the whole step. A step without calls
    has rate 0 but no error rate and no quantiles (null): nothing was measured, which is not 0 %
    or 0 ms."""
    seconds = _elapsed_s(point.start_ns, step_s, time.time_ns() if now_ns is None else now_ns)
    stats = stats_json(point)
    if not point.calls:
        stats.update(errorRate=None, p50Nano=None, p95Nano=None, p99Nano=None)
    return {"startTimeUnixNano": str(point.start_ns), "rate": point.calls / seconds, **stats}


def _elapsed_s(start_ns: int, step_s: int, now_ns: int) -> float:
    """Seconds of the step starting at `start_ns` that have passed by `now_ns`: the whole step once
    it is over, and also when it has not begun (its calls come from clocks ahead of ours); at
    least a second, so that a step a few ms old does not read as a burst."""
    elapsed = (now_ns - start_ns) / 1e9
    return max(1.0, elapsed) if 0 < elapsed < step_s else float(step_s)


def covered_seconds(start_ns: int, end_ns: int, now_ns: int, since_s: int | None) -> float:
    """The seconds a rate over [start_ns, end_ns) is over: from the later of the range's first
    minute and `since_s` (the first minute with spans of the service; None: no spans) to the
    earlier of its end and now; at least one. A service deployed (or a demo started) five minutes
    ago reads its calls/s on a 1-hour range, not a twelfth of them — to within the rollup's minute,
    while the service is new. Per service, not per operation: a rare operation is not a new one."""
    first = start_ns // 60_000_000_000 * 60
    if since_s is not None:
        first = max(first, since_s)
    return max(1.0, min(end_ns, now_ns) / 1e9 - first)


def operation_stats_json(stats: OperationStats, start_ns: int, end_ns: int, now_ns: int) -> dict[str, Any]:
    """An operation over [start_ns, end_ns): its `rate` is over the seconds its service has sent spans
    (`covered_seconds`)."""
    seconds = covered_seconds(start_ns, end_ns, now_ns, stats.since_s)
    return {"name": stats.name, "kind": stats.kind, "rate": stats.calls / seconds, **stats_json(stats)}


def node_ids(found: Dependencies) -> Callable[[str, str], str]:
    """The id of node (name, kind) in every graph answer: a queue named like a service
    (`orders`) is another node. The id is the name unless another kind shares it; then the
    non-service one is `name (kind)`."""
    kinds_of: dict[str, set[str]] = {name: {"service"} for name in found.services}
    for link in found.links:
        kinds_of.setdefault(link.parent, set()).add(link.parent_kind)
        kinds_of.setdefault(link.child, set()).add(link.child_kind)

    def node_id(name: str, kind: str) -> str:
        return name if kind == "service" or len(kinds_of[name]) == 1 else f"{name} ({kind})"

    return node_id


def _edge_seconds(found: Dependencies, link: DependencyLink, start_ns: int, end_ns: int, now_ns: int) -> float:
    """The seconds an edge's rate is over: from the later of its services' first minutes (a
    database, queue or peer end has none; one named like a service is not that service) to where
    the linker has read (`Dependencies.linked_until_s`), not to now: the calls since are not linked yet."""
    ends = ((link.parent, link.parent_kind), (link.child, link.child_kind))
    firsts = [found.since_s[name] for name, kind in ends if kind == "service" and name in found.since_s]
    if found.linked_until_s:
        now_ns = min(now_ns, int(found.linked_until_s * 1e9))
    return covered_seconds(start_ns, end_ns, now_ns, max(firsts) if firsts else None)


def dependencies_json(found: Dependencies, start_ns: int, end_ns: int, now_ns: int) -> dict[str, Any]:
    """The graph over [start_ns, end_ns); an edge's `rate` is over the seconds both its services have
    sent spans and the linker has read (`_edge_seconds`)."""
    node_id = node_ids(found)
    nodes = {(name, "service") for name in found.services}
    for link in found.links:
        nodes.update(((link.parent, link.parent_kind), (link.child, link.child_kind)))
    return {
        "nodes": [{"id": node_id(name, kind), "name": name, "kind": kind} for name, kind in sorted(nodes)],
        "edges": [
            {
                "parent": node_id(link.parent, link.parent_kind),
                "parentKind": link.parent_kind,
                "child": node_id(link.child, link.child_kind),
                "childKind": link.child_kind,
                "rate": link.calls / _edge_seconds(found, link, start_ns, end_ns, now_ns),
                **stats_json(link),
            }
            for link in found.links
        ],
    }
