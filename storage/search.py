"""SQL for trace search, built from fixed fragments; every value — attribute keys included —
is a bound parameter. The only module besides `sql/*.sql` that holds query text."""

from __future__ import annotations

from typing import Any

from tracehouse.storage.model import AttributeFilter, TraceQuery

#: `key=value` for a value that is not empty: a missing key reads as '', so no key test, which
#: would read every bucket's keys rather than the key's bucket (migration 0012).
_EQUALS_NOT_EMPTY = "SpanAttributes[{k}] = {v} OR ResourceAttributes[{k}] = {v}"


def _has(column: str) -> str:
    """`column` (a map) has the key {k}, reading the map's keys alone (its `keys` subcolumn):
    `mapContains` reads every bucket's keys and values. `indexHint` keeps the `mapContains` form
    for the keys' bloom filter, never evaluated; so only where the condition must hold (`NOT`
    of an indexHint is false everywhere)."""
    return f"(indexHint(mapContains({column}, {{k}})) AND has({column}.keys, {{k}}))"


_MAPS = ("SpanAttributes", "ResourceAttributes")


def _either(test: str) -> str:
    """`test` ({m}: the map) of the span's attributes, or of its resource's, that have the key."""
    return " OR ".join(f"(mapContains({m}, {{k}}) AND {test.replace('{m}', m)})" for m in _MAPS)


# Measured on the query benchmark's 10M spans (session 14): a search `key exists` 333 -> 190-223 ms
# with `_has` (a key every span has: 4.4 s -> 2.3 s over all of them; a key none has stays ~5 ms
# through the bloom filter), `absent` of a key every span has, over all of them, 5.2 -> 2.5 s (the
# condition alone; the engine's query condition cache then answers a repeat in ms). Where the value is
# read too (=, !=, =~), `_has` was slower (341-354 -> 406-463 ms): those keep `mapContains`, whose
# whole map serves the value as well.
_CONDITIONS = {
    "=": _either("{m}[{k}] = {v}"),
    "!=": _either("{m}[{k}] != {v}"),
    "=~": _either("match({m}[{k}], {v})"),
    "exists": " OR ".join(_has(m) for m in _MAPS),
    "absent": " AND ".join(f"NOT has({m}.keys, {{k}})" for m in _MAPS),
    # Zipkin's bare word: a tag key, or an annotation (an event's name)
    "annotated": " OR ".join([*(_has(m) for m in _MAPS), "has(Events.Name, {k})"]),
}
OPERATORS = frozenset(_CONDITIONS)

#: What a client or producer span calls (a consumer span: reads from) as the dependency linker names
#: it (storage/linker.py): the database, else the queue, else the peer service or address.
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

# The newest traces with a matching span in the window: by their newest matching span. A
# trace's start, which orders the answer, comes with its summary (`SUMMARIES`).
CANDIDATES = """
SELECT TraceId, toUnixTimestamp64Nano(max(Timestamp)) AS newest
FROM otel_traces
WHERE {where}
GROUP BY TraceId
ORDER BY newest DESC, TraceId DESC
LIMIT {candidates:UInt32}
"""

# (trace id, root service, root operation, start ns, duration ns, spans, errors, (services, spans)).
SUMMARIES = """
SELECT
    TraceId,
    tupleElement(min(Root), 3),
    tupleElement(min(Root), 4),
    toUnixTimestamp64Nano(min(Start)),
    toUnixTimestamp64Nano(max(End)) - toUnixTimestamp64Nano(min(Start)),
    sum(Spans),
    sum(Errors),
    sumMap(Services)
FROM tracehouse_trace_summaries
WHERE TraceId IN {ids:Array(String)}
GROUP BY TraceId
"""

# The same from the spans, for traces stored before the summary table existed (migration 0009).
SPAN_SUMMARIES = """
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


#: The first window searched is the newest minute of the range; each next one is this many
#: times longer (the newer part is read again: at most a third more work than one read).
FIRST_WINDOW_NS = 60 * 10**9
WINDOW_GROWTH = 4


class NewestFirst:
    """The search plan for one `TraceQuery`: windows ending at `end_ns`, newest first, growing
    until the newest `limit` traces are certain, so a search reads the minutes it needs rather
    than the whole range. Call `candidates()`, run it, summarise the candidates (when
    `may_answer()`), then `answer()`: the trace ids, or None (the plan has moved on: call
    `candidates()` again).

    Why the answer is exact: a trace missing from the candidates has no matching span newer
    than `bound` (the window's start, or the newest matching span of the last candidate when
    the candidate limit was reached), so it started at or before `bound`; candidates that
    started after it outrank every trace not seen. Once the window is the whole range and the
    limit was not reached, every matching trace is a candidate.
    """

    def __init__(self, query: TraceQuery) -> None:
        self.query = query
        self.window_start = max(query.start_ns, query.end_ns - FIRST_WINDOW_NS)
        self.limit = max(2 * query.limit, query.limit + 10)

    def candidates(self) -> tuple[str, dict[str, Any]]:
        """SQL and parameters: (trace id, newest matching span in ns), at most `self.limit`."""
        where, params = _conditions(self.query)
        params.update(start=self.window_start, candidates=self.limit)
        return CANDIDATES.replace("{where}", "\n  AND ".join(where)), params

    def may_answer(self, candidates: list[tuple[str, int]]) -> bool:
        """Whether `answer` can end the search with these candidates; if not, it needs no starts
        (fewer than `limit` candidates and more range to read: the plan moves on regardless)."""
        return len(candidates) >= self.query.limit or self.window_start <= self.query.start_ns

    def answer(self, candidates: list[tuple[str, int]], starts: dict[str, int]) -> list[str] | None:
        """`candidates` as `candidates()` found them, `starts` each one's start (ns)."""
        full = len(candidates) >= self.limit
        ranked = sorted(((starts[t], t) for t, _ in candidates if t in starts), reverse=True)[: self.query.limit]
        complete = not full and self.window_start <= self.query.start_ns
        bound = candidates[-1][1] if full else self.window_start - 1
        if complete or (len(ranked) == self.query.limit and (not ranked or ranked[-1][0] > bound)):
            return [trace_id for _, trace_id in ranked]
        if full:
            self.limit *= WINDOW_GROWTH
        else:
            length = (self.query.end_ns - self.window_start) * WINDOW_GROWTH
            self.window_start = max(self.query.start_ns, self.query.end_ns - length)
        return None


def _conditions(query: TraceQuery) -> tuple[list[str], dict[str, Any]]:
    """WHERE conditions and their parameters; the range starts at the parameter `start`."""
    where = ["Timestamp >= fromUnixTimestamp64Nano({start:Int64})", "Timestamp < fromUnixTimestamp64Nano({end:Int64})"]
    params: dict[str, Any] = {"start": query.start_ns, "end": query.end_ns}
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
        where.append(f"SpanKind IN ('Client', 'Producer', 'Consumer') AND {PEER_NAME} = {{peer:String}}")
        params["peer"] = query.peer
    for i, attribute in enumerate(query.attributes):
        where.append(f"({_attribute_condition(attribute, i)})")
        params[f"k{i}"] = attribute.key
        params[f"v{i}"] = attribute.value
    return where, params


def _attribute_condition(attribute: AttributeFilter, i: int) -> str:
    template = _CONDITIONS[attribute.op]  # KeyError is a programming error: the API validates ops
    if attribute.op == "=" and attribute.value:
        template = _EQUALS_NOT_EMPTY
    return template.replace("{k}", f"{{k{i}:String}}").replace("{v}", f"{{v{i}:String}}")
