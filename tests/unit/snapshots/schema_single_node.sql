-- Tracehouse schema version 19 for a single node, database tracehouse.
-- Written by `tracehouse schema print`; every statement is idempotent.

-- database and schema version table
CREATE DATABASE IF NOT EXISTS tracehouse;

USE tracehouse;

CREATE TABLE IF NOT EXISTS tracehouse_schema_migrations (
    Version UInt32,
    Name String,
    AppliedAt DateTime64(3) DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
ORDER BY Version;


-- 0001_otel_traces
CREATE TABLE IF NOT EXISTS otel_traces (
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1
) ENGINE = MergeTree
PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp))
TTL toDateTime(Timestamp) + toIntervalDay(7)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000,
    fsync_after_insert = 1, fsync_part_directory = 1;

INSERT INTO tracehouse_schema_migrations (Version, Name) VALUES (1, 'otel_traces');


-- 0002_trace_id_ts
CREATE TABLE IF NOT EXISTS otel_traces_trace_id_ts (
    TraceId String CODEC(ZSTD(1)),
    Start SimpleAggregateFunction(min, DateTime64(9)) CODEC(ZSTD(1)),
    End SimpleAggregateFunction(max, DateTime64(9)) CODEC(ZSTD(1))
) ENGINE = AggregatingMergeTree
ORDER BY TraceId
TTL toDateTime(End) + toIntervalDay(7)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000,
    fsync_after_insert = 1, fsync_part_directory = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS otel_traces_trace_id_ts_mv
TO otel_traces_trace_id_ts
AS SELECT
    TraceId,
    min(Timestamp) AS Start,
    max(Timestamp + toIntervalNanosecond(least(Duration, 31536000000000000))) AS End
FROM otel_traces
WHERE TraceId != ''
GROUP BY TraceId;

INSERT INTO tracehouse_schema_migrations (Version, Name) VALUES (2, 'trace_id_ts');


-- 0003_service_operations
CREATE TABLE IF NOT EXISTS tracehouse_operations (
    Day Date,
    ServiceName LowCardinality(String),
    SpanName LowCardinality(String),
    SpanKind LowCardinality(String),
    Spans SimpleAggregateFunction(sum, UInt64)
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(Day)
ORDER BY (ServiceName, SpanName, SpanKind, Day)
TTL Day + toIntervalDay(7)
SETTINGS non_replicated_deduplication_window = 1000,
    fsync_after_insert = 1, fsync_part_directory = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS tracehouse_operations_mv
TO tracehouse_operations
AS SELECT
    toDate(Timestamp) AS Day,
    ServiceName,
    SpanName,
    SpanKind,
    count() AS Spans
FROM otel_traces
GROUP BY Day, ServiceName, SpanName, SpanKind;

INSERT INTO tracehouse_schema_migrations (Version, Name) VALUES (3, 'service_operations');


-- 0004_otlp_ingest
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
WHERE length(span.trace_id) = 16 AND length(span.span_id) = 8;

INSERT INTO tracehouse_schema_migrations (Version, Name) VALUES (4, 'otlp_ingest');


-- 0005_red_rollup
CREATE TABLE IF NOT EXISTS tracehouse_red_1m (
    Minute DateTime CODEC(Delta, ZSTD(1)),
    ServiceName LowCardinality(String),
    SpanName LowCardinality(String),
    SpanKind LowCardinality(String),
    Calls SimpleAggregateFunction(sum, UInt64),
    Errors SimpleAggregateFunction(sum, UInt64),
    Latency AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), UInt64)
) ENGINE = AggregatingMergeTree
PARTITION BY toDate(Minute)
ORDER BY (ServiceName, SpanName, SpanKind, Minute)
TTL Minute + toIntervalDay(7)
SETTINGS non_replicated_deduplication_window = 1000, fsync_after_insert = 1, fsync_part_directory = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS tracehouse_red_1m_mv
TO tracehouse_red_1m
AS SELECT
    toStartOfMinute(Timestamp) AS Minute,
    ServiceName,
    SpanName,
    SpanKind,
    count() AS Calls,
    countIf(StatusCode = 'Error') AS Errors,
    quantilesTDigestState(0.5, 0.95, 0.99)(Duration) AS Latency
FROM otel_traces
GROUP BY Minute, ServiceName, SpanName, SpanKind;

INSERT INTO tracehouse_schema_migrations (Version, Name) VALUES (5, 'red_rollup');


-- 0006_dependency_links
CREATE TABLE IF NOT EXISTS tracehouse_links_1m (
    Minute DateTime CODEC(Delta, ZSTD(1)),
    Parent LowCardinality(String),
    Child LowCardinality(String),
    ChildKind LowCardinality(String),
    Calls UInt64,
    Errors UInt64,
    Latency AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), UInt64),
    Version UInt64
) ENGINE = MergeTree
PARTITION BY toDate(Minute)
ORDER BY (Minute, Parent, Child, ChildKind, Version)
TTL Minute + toIntervalDay(7)
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

INSERT INTO tracehouse_schema_migrations (Version, Name) VALUES (6, 'dependency_links');


-- 0007_link_dirty_minutes
CREATE TABLE IF NOT EXISTS tracehouse_link_dirty (
    Minute DateTime,
    InsertedAt DateTime64(3)
) ENGINE = MergeTree
ORDER BY (InsertedAt, Minute)
TTL toDateTime(InsertedAt) + toIntervalDay(1);

CREATE MATERIALIZED VIEW IF NOT EXISTS tracehouse_link_dirty_mv
TO tracehouse_link_dirty
AS SELECT DISTINCT toStartOfMinute(Timestamp) AS Minute, now64(3) AS InsertedAt
FROM otel_traces;

INSERT INTO tracehouse_schema_migrations (Version, Name) VALUES (7, 'link_dirty_minutes');


-- 0008_breaker_stats
CREATE TABLE IF NOT EXISTS tracehouse_breaker_stats (
    Timestamp DateTime CODEC(Delta, ZSTD(1)),
    Cluster LowCardinality(String),
    Kind LowCardinality(String),
    Name LowCardinality(String),
    InstanceId LowCardinality(String),
    ServiceName LowCardinality(String),
    GroupName LowCardinality(String),
    Source LowCardinality(String),
    State LowCardinality(String),
    Counts Map(LowCardinality(String), UInt64),
    LatencyBuckets Map(UInt16, UInt64),
    LatencySumMs Float64,
    Concurrency UInt32,
    MaxConcurrency UInt32,
    Gauges Map(LowCardinality(String), Float64),
    Properties Map(LowCardinality(String), String)
) ENGINE = ReplacingMergeTree
PARTITION BY toDate(Timestamp)
ORDER BY (Cluster, Kind, Name, Timestamp, InstanceId)
TTL Timestamp + toIntervalDay(7)
SETTINGS ttl_only_drop_parts = 1, fsync_after_insert = 1, fsync_part_directory = 1;

INSERT INTO tracehouse_schema_migrations (Version, Name) VALUES (8, 'breaker_stats');


-- 0009_trace_summaries
CREATE TABLE IF NOT EXISTS tracehouse_traces (
    TraceId String CODEC(ZSTD(1)),
    Start SimpleAggregateFunction(min, DateTime64(9)) CODEC(ZSTD(1)),
    End SimpleAggregateFunction(max, DateTime64(9)) CODEC(ZSTD(1)),
    Root SimpleAggregateFunction(min, Tuple(UInt8, DateTime64(9), String, String)) CODEC(ZSTD(1)),
    Spans SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    Errors SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    Services SimpleAggregateFunction(sumMap, Tuple(Array(String), Array(UInt64))) CODEC(ZSTD(1))
) ENGINE = AggregatingMergeTree
ORDER BY TraceId
TTL toDateTime(End) + toIntervalDay(7)
SETTINGS index_granularity = 1024, non_replicated_deduplication_window = 1000,
    fsync_after_insert = 1, fsync_part_directory = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS tracehouse_traces_mv
TO tracehouse_traces
AS SELECT
    TraceId,
    min(Timestamp) AS Start,
    max(Timestamp + toIntervalNanosecond(least(Duration, 31536000000000000))) AS End,
    min((ParentSpanId != '', Timestamp, toString(ServiceName), toString(SpanName))) AS Root,
    count() AS Spans,
    countIf(StatusCode = 'Error') AS Errors,
    sumMap([toString(ServiceName)], [toUInt64(1)]) AS Services
FROM otel_traces
WHERE TraceId != ''
GROUP BY TraceId;

INSERT INTO tracehouse_schema_migrations (Version, Name) VALUES (9, 'trace_summaries');


-- 0010_trace_id_projection
ALTER TABLE otel_traces ADD PROJECTION IF NOT EXISTS by_trace_id (SELECT * ORDER BY TraceId)
WITH SETTINGS (index_granularity = 1024, map_serialization_version = 'basic',
    min_bytes_for_wide_part = 1000000000000, min_rows_for_wide_part = 1000000000000);

ALTER TABLE otel_traces MATERIALIZE PROJECTION by_trace_id SETTINGS mutations_sync = 0;

ALTER TABLE otel_traces MODIFY SETTING lightweight_mutation_projection_mode = 'rebuild';

INSERT INTO tracehouse_schema_migrations (Version, Name) VALUES (10, 'trace_id_projection');


-- 0011_trace_summary_blocks
ALTER TABLE tracehouse_traces MODIFY SETTING min_compress_block_size = 4096, max_compress_block_size = 16384;

INSERT INTO tracehouse_schema_migrations (Version, Name) VALUES (11, 'trace_summary_blocks');


-- 0012_attribute_buckets
ALTER TABLE otel_traces MODIFY SETTING map_serialization_version = 'with_buckets',
    map_serialization_version_for_zero_level_parts = 'basic', map_buckets_strategy = 'linear',
    map_buckets_coefficient = 1, max_buckets_in_map = 16, map_buckets_min_avg_size = 4;

INSERT INTO tracehouse_schema_migrations (Version, Name) VALUES (12, 'attribute_buckets');


-- 0013_trace_summary_granules
CREATE TABLE IF NOT EXISTS tracehouse_trace_summaries (
    TraceId String CODEC(ZSTD(1)),
    Start SimpleAggregateFunction(min, DateTime64(9)) CODEC(ZSTD(1)),
    End SimpleAggregateFunction(max, DateTime64(9)) CODEC(ZSTD(1)),
    Root SimpleAggregateFunction(min, Tuple(UInt8, DateTime64(9), String, String)) CODEC(ZSTD(1)),
    Spans SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    Errors SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    Services SimpleAggregateFunction(sumMap, Tuple(Array(String), Array(UInt64))) CODEC(ZSTD(1))
) ENGINE = AggregatingMergeTree
ORDER BY TraceId
TTL toDateTime(End) + toIntervalDay(7)
SETTINGS index_granularity = 256, min_compress_block_size = 4096, max_compress_block_size = 16384,
    non_replicated_deduplication_window = 1000, fsync_after_insert = 1, fsync_part_directory = 1;

DROP VIEW IF EXISTS tracehouse_traces_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS tracehouse_trace_summaries_mv
TO tracehouse_trace_summaries
AS SELECT
    TraceId,
    min(Timestamp) AS Start,
    max(Timestamp + toIntervalNanosecond(least(Duration, 31536000000000000))) AS End,
    min((ParentSpanId != '', Timestamp, toString(ServiceName), toString(SpanName))) AS Root,
    count() AS Spans,
    countIf(StatusCode = 'Error') AS Errors,
    sumMap([toString(ServiceName)], [toUInt64(1)]) AS Services
FROM otel_traces
WHERE TraceId != ''
GROUP BY TraceId;

INSERT INTO tracehouse_trace_summaries
SELECT * FROM tracehouse_traces FINAL
WHERE TraceId GLOBAL NOT IN (SELECT TraceId FROM tracehouse_trace_summaries);

INSERT INTO tracehouse_schema_migrations (Version, Name) VALUES (13, 'trace_summary_granules');


-- 0014_drop_old_trace_summaries
DROP TABLE IF EXISTS tracehouse_traces;

INSERT INTO tracehouse_schema_migrations (Version, Name) VALUES (14, 'drop_old_trace_summaries');


-- 0015_string_attributes_fast_path
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
WHERE length(span.trace_id) = 16 AND length(span.span_id) = 8;

INSERT INTO tracehouse_schema_migrations (Version, Name) VALUES (15, 'string_attributes_fast_path');


-- 0016_fewer_merges
ALTER TABLE otel_traces MODIFY SETTING merge_selector_base = 20;

INSERT INTO tracehouse_schema_migrations (Version, Name) VALUES (16, 'fewer_merges');


-- 0017_compact_inserted_parts
ALTER TABLE otel_traces MODIFY SETTING min_rows_for_wide_part = 100000;

INSERT INTO tracehouse_schema_migrations (Version, Name) VALUES (17, 'compact_inserted_parts');


-- 0018_truncation_recorded_everywhere
CREATE OR REPLACE FUNCTION tracehouse_otlp_truncated AS (kvs) -> length(kvs) > 1024 OR arrayExists(
    kv -> lengthUTF8(tupleElement(kv, 'key')) > 256
        OR lengthUTF8(tupleElement(tupleElement(kv, 'value'), 'string_value')) > 65536
        OR length(tupleElement(tupleElement(kv, 'value'), 'bytes_value')) > 49152, kvs);

INSERT INTO tracehouse_schema_migrations (Version, Name) VALUES (18, 'truncation_recorded_everywhere');


-- 0019_view_uses_character_caps
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
WHERE length(span.trace_id) = 16 AND length(span.span_id) = 8;

INSERT INTO tracehouse_schema_migrations (Version, Name) VALUES (19, 'view_uses_character_caps');
