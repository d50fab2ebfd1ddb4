-- Trace id -> time range, so a trace-by-id read scans one narrow range of otel_traces.
-- Same name and columns as the exporter's table; merged per TraceId by AggregatingMergeTree.
CREATE TABLE IF NOT EXISTS otel_traces_trace_id_ts (
    TraceId String CODEC(ZSTD(1)),
    Start SimpleAggregateFunction(min, DateTime64(9)) CODEC(ZSTD(1)),
    End SimpleAggregateFunction(max, DateTime64(9)) CODEC(ZSTD(1))
) ENGINE = AggregatingMergeTree
ORDER BY TraceId
TTL toDateTime(End) + toIntervalDay({ttl_days})
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000,
    fsync_after_insert = 1, fsync_part_directory = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS otel_traces_trace_id_ts_mv
TO otel_traces_trace_id_ts
AS SELECT
    TraceId,
    min(Timestamp) AS Start,
    -- Duration capped at a year: a bogus one must not overflow DateTime64 and fail the insert.
    max(Timestamp + toIntervalNanosecond(least(Duration, 31536000000000000))) AS End
FROM otel_traces
WHERE TraceId != ''
GROUP BY TraceId
