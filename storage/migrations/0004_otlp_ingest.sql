-- OTLP ingest inside ClickHouse: raw ExportTraceServiceRequest bytes are inserted into the
-- Null table otel_traces_otlp (Protobuf input format, schema storage/schema/otlp_trace.proto,
-- input_format_protobuf_oneof_presence = 1) and flattened into otel_traces by the view below.
-- The collector validates ids before the insert; the view's WHERE only guards the table.
-- Attribute values are stored as the exporter stores them: scalars as text, arrays and
-- key/value lists as JSON. Text is repaired with toValidUTF8 (the collector parses strings
-- as bytes so that one bad span name does not cost the whole request).

-- UDF bodies use tupleElement(): dotted access to a lambda parameter is not substituted
-- when one UDF is inlined into another.
CREATE FUNCTION IF NOT EXISTS tracehouse_otlp_json AS (v) -> multiIf(
    tupleElement(v, 'value') = 'string_value', toJSONString(toValidUTF8(tupleElement(v, 'string_value'))),
    tupleElement(v, 'value') = 'bool_value', if(tupleElement(v, 'bool_value'), 'true', 'false'),
    tupleElement(v, 'value') = 'int_value', toString(tupleElement(v, 'int_value')),
    tupleElement(v, 'value') = 'double_value', toString(tupleElement(v, 'double_value')),
    tupleElement(v, 'value') = 'none', 'null',
    toJSONString(base64Encode(concat(
        tupleElement(v, 'bytes_value'), tupleElement(v, 'array_value'), tupleElement(v, 'kvlist_value')))));

CREATE FUNCTION IF NOT EXISTS tracehouse_otlp_text AS (v) -> multiIf(
    tupleElement(v, 'value') = 'string_value', toValidUTF8(tupleElement(v, 'string_value')),
    tupleElement(v, 'value') = 'bool_value', if(tupleElement(v, 'bool_value'), 'true', 'false'),
    tupleElement(v, 'value') = 'int_value', toString(tupleElement(v, 'int_value')),
    tupleElement(v, 'value') = 'double_value', toString(tupleElement(v, 'double_value')),
    tupleElement(v, 'value') = 'bytes_value', base64Encode(tupleElement(v, 'bytes_value')),
    tupleElement(v, 'value') = 'array_value', concat('[', arrayStringConcat(
        arrayMap(x -> tracehouse_otlp_json(x), tupleElement(tupleElement(v, 'array_value'), 'values')), ','), ']'),
    tupleElement(v, 'value') = 'kvlist_value', concat('{', arrayStringConcat(arrayMap(
        kv -> concat(toJSONString(toValidUTF8(tupleElement(kv, 'key'))), ':', tracehouse_otlp_json(tupleElement(kv, 'value'))),
        tupleElement(tupleElement(v, 'kvlist_value'), 'values')), ','), '}'),
    '');

-- At most 1024 attributes per map, keys of 256 and values of 65536 characters; a span whose
-- attributes were cut carries tracehouse.truncated = 'true'.
CREATE FUNCTION IF NOT EXISTS tracehouse_otlp_map AS (kvs) -> CAST(
    mapFromArrays(
        arrayMap(kv -> leftUTF8(toValidUTF8(tupleElement(kv, 'key')), 256), arraySlice(kvs, 1, 1024)),
        arrayMap(kv -> leftUTF8(tracehouse_otlp_text(tupleElement(kv, 'value')), 65536), arraySlice(kvs, 1, 1024))),
    'Map(LowCardinality(String), String)');

CREATE FUNCTION IF NOT EXISTS tracehouse_otlp_truncated AS (kvs) -> length(kvs) > 1024 OR arrayExists(
    kv -> length(tupleElement(kv, 'key')) > 256
        OR length(tupleElement(tupleElement(kv, 'value'), 'string_value')) > 65536
        OR length(tupleElement(tupleElement(kv, 'value'), 'bytes_value')) > 49152, kvs);

CREATE FUNCTION IF NOT EXISTS tracehouse_otlp_span_map AS (kvs) -> if(
    tracehouse_otlp_truncated(kvs),
    CAST(mapUpdate(tracehouse_otlp_map(kvs), map('tracehouse.truncated', 'true')), 'Map(LowCardinality(String), String)'),
    tracehouse_otlp_map(kvs));

-- Attribute lists are Array(Tuple(key, value)); a value is the AnyValue oneof with a presence
-- column `value` (which field is set), nested two levels as in otlp_trace.proto.
CREATE TABLE IF NOT EXISTS otel_traces_otlp (
    resource_spans Array(Tuple(
        resource Tuple(attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Bool, int_value Int64, double_value Float64, bytes_value String, array_value Tuple(values Array(Tuple(string_value String, bool_value Bool, int_value Int64, double_value Float64, bytes_value String, array_value String, kvlist_value String, value Enum8('none' = 0, 'string_value' = 1, 'bool_value' = 2, 'int_value' = 3, 'double_value' = 4, 'array_value' = 5, 'kvlist_value' = 6, 'bytes_value' = 7)))), kvlist_value Tuple(values Array(Tuple(key String, value Tuple(string_value String, bool_value Bool, int_value Int64, double_value Float64, bytes_value String, array_value String, kvlist_value String, value Enum8('none' = 0, 'string_value' = 1, 'bool_value' = 2, 'int_value' = 3, 'double_value' = 4, 'array_value' = 5, 'kvlist_value' = 6, 'bytes_value' = 7))))), value Enum8('none' = 0, 'string_value' = 1, 'bool_value' = 2, 'int_value' = 3, 'double_value' = 4, 'array_value' = 5, 'kvlist_value' = 6, 'bytes_value' = 7))))),
        scope_spans Array(Tuple(
            scope Tuple(name String, version String),
            spans Array(Tuple(
                trace_id String, span_id String, trace_state String, parent_span_id String, name String,
                kind Int32, start_time_unix_nano UInt64, end_time_unix_nano UInt64,
                attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Bool, int_value Int64, double_value Float64, bytes_value String, array_value Tuple(values Array(Tuple(string_value String, bool_value Bool, int_value Int64, double_value Float64, bytes_value String, array_value String, kvlist_value String, value Enum8('none' = 0, 'string_value' = 1, 'bool_value' = 2, 'int_value' = 3, 'double_value' = 4, 'array_value' = 5, 'kvlist_value' = 6, 'bytes_value' = 7)))), kvlist_value Tuple(values Array(Tuple(key String, value Tuple(string_value String, bool_value Bool, int_value Int64, double_value Float64, bytes_value String, array_value String, kvlist_value String, value Enum8('none' = 0, 'string_value' = 1, 'bool_value' = 2, 'int_value' = 3, 'double_value' = 4, 'array_value' = 5, 'kvlist_value' = 6, 'bytes_value' = 7))))), value Enum8('none' = 0, 'string_value' = 1, 'bool_value' = 2, 'int_value' = 3, 'double_value' = 4, 'array_value' = 5, 'kvlist_value' = 6, 'bytes_value' = 7)))),
                events Array(Tuple(time_unix_nano UInt64, name String, attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Bool, int_value Int64, double_value Float64, bytes_value String, array_value Tuple(values Array(Tuple(string_value String, bool_value Bool, int_value Int64, double_value Float64, bytes_value String, array_value String, kvlist_value String, value Enum8('none' = 0, 'string_value' = 1, 'bool_value' = 2, 'int_value' = 3, 'double_value' = 4, 'array_value' = 5, 'kvlist_value' = 6, 'bytes_value' = 7)))), kvlist_value Tuple(values Array(Tuple(key String, value Tuple(string_value String, bool_value Bool, int_value Int64, double_value Float64, bytes_value String, array_value String, kvlist_value String, value Enum8('none' = 0, 'string_value' = 1, 'bool_value' = 2, 'int_value' = 3, 'double_value' = 4, 'array_value' = 5, 'kvlist_value' = 6, 'bytes_value' = 7))))), value Enum8('none' = 0, 'string_value' = 1, 'bool_value' = 2, 'int_value' = 3, 'double_value' = 4, 'array_value' = 5, 'kvlist_value' = 6, 'bytes_value' = 7)))))),
                links Array(Tuple(trace_id String, span_id String, trace_state String, attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Bool, int_value Int64, double_value Float64, bytes_value String, array_value Tuple(values Array(Tuple(string_value String, bool_value Bool, int_value Int64, double_value Float64, bytes_value String, array_value String, kvlist_value String, value Enum8('none' = 0, 'string_value' = 1, 'bool_value' = 2, 'int_value' = 3, 'double_value' = 4, 'array_value' = 5, 'kvlist_value' = 6, 'bytes_value' = 7)))), kvlist_value Tuple(values Array(Tuple(key String, value Tuple(string_value String, bool_value Bool, int_value Int64, double_value Float64, bytes_value String, array_value String, kvlist_value String, value Enum8('none' = 0, 'string_value' = 1, 'bool_value' = 2, 'int_value' = 3, 'double_value' = 4, 'array_value' = 5, 'kvlist_value' = 6, 'bytes_value' = 7))))), value Enum8('none' = 0, 'string_value' = 1, 'bool_value' = 2, 'int_value' = 3, 'double_value' = 4, 'array_value' = 5, 'kvlist_value' = 6, 'bytes_value' = 7)))))),
                status Tuple(message String, code Int32)
            ))
        ))
    ))
) ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS otel_traces_otlp_mv TO otel_traces AS
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
    tracehouse_otlp_span_map(span.attributes) AS SpanAttributes,
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
