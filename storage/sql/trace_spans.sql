-- All spans of one trace. The lookup table bounds the scan to the trace's time range;
-- an id missing from it reads an empty range. At most {limit} spans, the earliest.
SELECT
    toUnixTimestamp64Nano(Timestamp),
    TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind, ServiceName,
    ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration,
    StatusCode, StatusMessage,
    arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp), Events.Name, Events.Attributes,
    Links.TraceId, Links.SpanId, Links.TraceState, Links.Attributes
FROM otel_traces
WHERE TraceId = {trace_id:String}
  AND Timestamp >= (SELECT min(Start) FROM otel_traces_trace_id_ts WHERE TraceId = {trace_id:String})
  AND Timestamp <= (SELECT max(End) FROM otel_traces_trace_id_ts WHERE TraceId = {trace_id:String})
ORDER BY Timestamp, SpanId
LIMIT {limit:UInt32}
