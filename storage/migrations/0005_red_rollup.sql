-- Per-minute RED rollup (rate, errors, duration quantiles) per service, operation and kind,
-- kept by a view. Every span counts in exactly one row, so a view over insert blocks is
-- exact here (unlike links between spans, which need both sides).
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
TTL Minute + toIntervalDay({ttl_days})
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
GROUP BY Minute, ServiceName, SpanName, SpanKind
