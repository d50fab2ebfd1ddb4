-- All spans of one trace, at most {limit}, the earliest. The by_trace_id projection
-- (migration 0010) finds them in one granule, without a time range.
SELECT
    toUnixTimestamp64Nano(Timestamp),
    TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind, ServiceName,
    ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration,
    StatusCode, StatusMessage,
    arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp), Events.Name, Events.Attributes,
    Links.TraceId, Links.SpanId, Links.TraceState, Links.Attributes
FROM otel_traces
WHERE TraceId = {trace_id:String}
ORDER BY Timestamp, SpanId
LIMIT {limit:UInt32}
