-- Services and operations (with span kind) seen per day, for /services and /operations
-- without scanning spans.
CREATE TABLE IF NOT EXISTS tracehouse_operations (
    Day Date,
    ServiceName LowCardinality(String),
    SpanName LowCardinality(String),
    SpanKind LowCardinality(String),
    Spans SimpleAggregateFunction(sum, UInt64)
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(Day)
ORDER BY (ServiceName, SpanName, SpanKind, Day)
TTL Day + toIntervalDay({ttl_days})
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
GROUP BY Day, ServiceName, SpanName, SpanKind
