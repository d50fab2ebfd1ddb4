-- The view again, unchanged, so that it uses 0018's tracehouse_otlp_truncated: a view is stored with
-- the SQL functions it calls written out as they were when it was made (0015), so replacing the
-- function (0018) changed nothing for it — a 40,000-character value of 80 KB was still marked
-- tracehouse.truncated on a store made from scratch (the tests passed only where an earlier store in
-- the same engine had made the functions first). MODIFY QUERY writes the functions out anew.
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
