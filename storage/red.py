"""SQL for RED series: whole-minute steps over a whole-minute range read the per-minute
rollup, anything else reads raw spans (a rollup minute cannot be split). Empty steps are
filled with zeros (WITH FILL). Every value is bound."""

from __future__ import annotations

from typing import Any

from tracehouse.storage.model import RedQuery

MINUTE_NS = 60 * 10**9

_FROM_ROLLUP = """
SELECT
    toUnixTimestamp(toStartOfInterval(Minute, toIntervalSecond({step:UInt32}))) AS t,
    sum(Calls), sum(Errors),
    quantilesTDigestMerge(0.5, 0.95, 0.99)(Latency)
FROM tracehouse_red_1m
WHERE ServiceName = {service:String}
  AND Minute >= toStartOfMinute(fromUnixTimestamp64Nano({start:Int64}))
  AND Minute < fromUnixTimestamp64Nano({end:Int64})
  {filters}
GROUP BY t
ORDER BY t WITH FILL FROM {first:UInt32} TO {last:UInt32} STEP {step:UInt32}
"""

_FROM_SPANS = """
SELECT
    toUnixTimestamp(toStartOfInterval(Timestamp, toIntervalSecond({step:UInt32}))) AS t,
    count(), countIf(StatusCode = 'Error'),
    quantilesTDigest(0.5, 0.95, 0.99)(Duration)
FROM otel_traces
WHERE ServiceName = {service:String}
  AND Timestamp >= fromUnixTimestamp64Nano({start:Int64})
  AND Timestamp < fromUnixTimestamp64Nano({end:Int64})
  {filters}
GROUP BY t
ORDER BY t WITH FILL FROM {first:UInt32} TO {last:UInt32} STEP {step:UInt32}
"""


def red_series(query: RedQuery) -> tuple[str, dict[str, Any]]:
    step = query.step_s
    first = query.start_ns // 10**9 // step * step
    last = (query.end_ns - 1) // 10**9 // step * step + step
    params: dict[str, Any] = {
        "service": query.service, "start": query.start_ns, "end": query.end_ns, "step": step,
        "first": first, "last": last,
    }  # fmt: skip
    filters = []
    if query.operation is not None:
        filters.append("AND SpanName = {operation:String}")
        params["operation"] = query.operation
    if query.span_kinds:
        filters.append("AND SpanKind IN {kinds:Array(String)}")
        params["kinds"] = list(query.span_kinds)
    aligned = query.start_ns % MINUTE_NS == 0 and query.end_ns % MINUTE_NS == 0
    template = _FROM_ROLLUP if step % 60 == 0 and aligned else _FROM_SPANS
    return template.replace("{filters}", "\n  ".join(filters)), params
