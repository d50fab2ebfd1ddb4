-- Span attributes whose values are all strings within the caps (the common case) become a map
-- directly: no per-value multiIf, no scan for truncation. Measured on 45 requests of the ingest data
-- set (the view's SELECT over the decoded block): 187 -> 148 ms and a peak of 288 -> 224 MiB (an
-- insert's memory is what limits two inserts at once under the engine's cap). Anything else (another
-- value type, an oversized key or value, more than 1,024 attributes) takes the full path,
-- tracehouse_otlp_span_map, so the map stored is the same either way. MODIFY QUERY replaces the
-- view's query in one step: no insert passes between an old view and a new one.
CREATE FUNCTION IF NOT EXISTS tracehouse_otlp_span_attributes AS (kvs) -> if(
    length(kvs) <= 1024 AND arrayAll(
        kv -> tupleElement(tupleElement(kv, 'value'), 'value') = 'string_value'
            AND length(tupleElement(kv, 'key')) <= 256
            AND length(tupleElement(tupleElement(kv, 'value'), 'string_value')) <= 65536, kvs),
    CAST(mapFromArrays(
        arrayMap(kv -> toValidUTF8(tupleElement(kv, 'key')), kvs),
        arrayMap(kv -> toValidUTF8(tupleElement(tupleElement(kv, 'value'), 'string_value')), kvs)),
        'Map(LowCardinality(String), String)'),
    tracehouse_otlp_span_map(kvs));

ALTER TABLE otel_traces_otlp_mv MODIFY QUERY
SELECT
    fromUnixTimestamp64Nano(toInt64(span.start_time_unix_nano)) AS Timestamp,
    lower(hex(span.trace_id)) AS TraceId,
    lower(hex(span.span_id)) AS SpanId,
    lower(hex(span.parent_span_id)) AS ParentSpanId,
    toValidUTF8(span.trace_state) AS TraceState,
    toValidUTF8(span.name) AS SpanName,
    if(span.kind BETWEEN 0 AND 5,
       ['Unspecified', 'Internal', 'Server', 'Client', 'Producer', 'Consumer'][span.kind + 1],
       'Unspecified') AS SpanKind,
    tracehouse_otlp_map(rs.resource.attributes) AS ResourceAttributes,
    if(mapContains(ResourceAttributes, 'service.name'), ResourceAttributes['service.name'], 'unknown_service')
        AS ServiceName,
    toValidUTF8(ss.scope.name) AS ScopeName,
    toValidUTF8(ss.scope.version) AS ScopeVersion,
    tracehouse_otlp_span_attributes(span.attributes) AS SpanAttributes,
    if(span.end_time_unix_nano > span.start_time_unix_nano,
       span.end_time_unix_nano - span.start_time_unix_nano, 0) AS Duration,
    if(span.status.code BETWEEN 0 AND 2, ['Unset', 'Ok', 'Error'][span.status.code + 1], 'Unset') AS StatusCode,
    toValidUTF8(span.status.message) AS StatusMessage,
    arrayMap(e -> fromUnixTimestamp64Nano(toInt64(e.time_unix_nano)), span.events) AS `Events.Timestamp`,
    arrayMap(e -> toValidUTF8(e.name), span.events) AS `Events.Name`,
    arrayMap(e -> tracehouse_otlp_map(e.attributes), span.events) AS `Events.Attributes`,
    arrayMap(l -> lower(hex(l.trace_id)), span.links) AS `Links.TraceId`,
    arrayMap(l -> lower(hex(l.span_id)), span.links) AS `Links.SpanId`,
    arrayMap(l -> toValidUTF8(l.trace_state), span.links) AS `Links.TraceState`,
    arrayMap(l -> tracehouse_otlp_map(l.attributes), span.links) AS `Links.Attributes`
FROM otel_traces_otlp
ARRAY JOIN resource_spans AS rs
ARRAY JOIN rs.scope_spans AS ss
ARRAY JOIN ss.spans AS span
WHERE length(span.trace_id) = 16 AND length(span.span_id) = 8
