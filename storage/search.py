"""SQL for trace search, built from fixed fragments; every value — attribute keys included —
is a bound parameter. The only module besides `sql/*.sql` that holds query text."""

from __future__ import annotations

from typing import Any

from tracehouse.storage.model import AttributeFilter, TraceQuery

_CONDITIONS = {
    "=": "(mapContains(SpanAttributes, {k}) AND SpanAttributes[{k}] = {v})"
    " OR (mapContains(ResourceAttributes, {k}) AND ResourceAttributes[{k}] = {v})",
    "!=": "(mapContains(SpanAttributes, {k}) AND SpanAttributes[{k}] != {v})"
    " OR (mapContains(ResourceAttributes, {k}) AND ResourceAttributes[{k}] != {v})",
    "=~": "(mapContains(SpanAttributes, {k}) AND match(SpanAttributes[{k}], {v}))"
    " OR (mapContains(ResourceAttributes, {k}) AND match(ResourceAttributes[{k}], {v}))",
    "exists": "mapContains(SpanAttributes, {k}) OR mapContains(ResourceAttributes, {k})",
    "absent": "NOT mapContains(SpanAttributes, {k}) AND NOT mapContains(ResourceAttributes, {k})",
}
OPERATORS = frozenset(_CONDITIONS)

#: A client or producer span's callee as the dependency linker names it (storage/linker.py
#: `_PEER_LINKS`): the database, else the queue, else the peer service or address.
PEER_NAME = """multiIf(
    SpanAttributes['db.system'] != '', coalesce(nullIf(SpanAttributes['db.name'], ''), SpanAttributes['db.system']),
    SpanAttributes['messaging.system'] != '', coalesce(nullIf(SpanAttributes['messaging.destination.name'], ''),
                                                       SpanAttributes['messaging.system']),
    coalesce(nullIf(SpanAttributes['peer.service'], ''), SpanAttributes['server.address'],
             SpanAttributes['net.peer.name']))"""
# A parent may have started up to this long before the window (as the linker looks back).
_PARENT = """(TraceId, ParentSpanId) IN (
      SELECT TraceId, SpanId FROM otel_traces
      WHERE ServiceName = {parent_service:String}
        AND Timestamp >= fromUnixTimestamp64Nano({parents_from:Int64})
        AND Timestamp < fromUnixTimestamp64Nano({end:Int64})
  )"""
PARENT_LOOKBACK_NS = 3600 * 10**9

# Matching spans pick the traces; the lookup table gives each trace's own start for the order.
MATCHING_TRACES = """
SELECT TraceId, min(Start) AS first
FROM otel_traces_trace_id_ts
WHERE TraceId IN (SELECT TraceId FROM otel_traces WHERE {where})
GROUP BY TraceId
ORDER BY first DESC, TraceId DESC
LIMIT {limit:UInt32}
"""

SUMMARIES = """
SELECT
    TraceId,
    argMin(ServiceName, (ParentSpanId != '', Timestamp)),
    argMin(SpanName, (ParentSpanId != '', Timestamp)),
    toUnixTimestamp64Nano(min(Timestamp)),
    max(toUnixTimestamp64Nano(Timestamp) + Duration) - toUnixTimestamp64Nano(min(Timestamp)),
    count(),
    countIf(StatusCode = 'Error'),
    sumMap([ServiceName], [toUInt64(1)])
FROM otel_traces
WHERE TraceId IN {ids:Array(String)}
  AND Timestamp >= (SELECT min(Start) FROM otel_traces_trace_id_ts WHERE TraceId IN {ids:Array(String)})
  AND Timestamp <= (SELECT max(End) FROM otel_traces_trace_id_ts WHERE TraceId IN {ids:Array(String)})
GROUP BY TraceId
"""


def matching_traces(query: TraceQuery) -> tuple[str, dict[str, Any]]:
    """SQL and parameters for the ids of the newest `query.limit` matching traces."""
    where = ["Timestamp >= fromUnixTimestamp64Nano({start:Int64})", "Timestamp < fromUnixTimestamp64Nano({end:Int64})"]
    params: dict[str, Any] = {"start": query.start_ns, "end": query.end_ns, "limit": query.limit}
    optional = (
        ("ServiceName = {service:String}", "service", query.service),
        ("SpanName = {operation:String}", "operation", query.operation),
        ("Duration >= {min_duration:UInt64}", "min_duration", query.min_duration_ns),
        ("Duration <= {max_duration:UInt64}", "max_duration", query.max_duration_ns),
    )
    for condition, name, value in optional:
        if value is not None:
            where.append(condition)
            params[name] = value
    if query.errors_only:
        where.append("StatusCode = 'Error'")
    if query.parent_service is not None:
        where.append(_PARENT)
        params.update(parent_service=query.parent_service, parents_from=query.start_ns - PARENT_LOOKBACK_NS)
    if query.peer is not None:
        where.append(f"SpanKind IN ('Client', 'Producer') AND {PEER_NAME} = {{peer:String}}")
        params["peer"] = query.peer
    for i, attribute in enumerate(query.attributes):
        where.append(f"({_attribute_condition(attribute, i)})")
        params[f"k{i}"] = attribute.key
        params[f"v{i}"] = attribute.value
    return MATCHING_TRACES.replace("{where}", "\n  AND ".join(where)), params


def _attribute_condition(attribute: AttributeFilter, i: int) -> str:
    template = _CONDITIONS[attribute.op]  # KeyError is a programming error: the API validates ops
    return template.replace("{k}", f"{{k{i}:String}}").replace("{v}", f"{{v{i}:String}}")
