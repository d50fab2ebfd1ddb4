-- One row per trace (merged per TraceId): its time range, root span, span and error counts and
-- spans per service, kept by a view. Trace search ranks and summarises its candidates from here
-- instead of reading their spans, which lie scattered over otel_traces' (service, operation)
-- ranges; small granules, as it is read by a few ids at a time. Traces whose spans were all
-- stored before this migration have no row (search summarises those from their spans).
CREATE TABLE IF NOT EXISTS tracehouse_traces (
    TraceId String CODEC(ZSTD(1)),
    Start SimpleAggregateFunction(min, DateTime64(9)) CODEC(ZSTD(1)),
    End SimpleAggregateFunction(max, DateTime64(9)) CODEC(ZSTD(1)),
    -- (is a child span, start, service, name): the minimum is the earliest span without a parent.
    Root SimpleAggregateFunction(min, Tuple(UInt8, DateTime64(9), String, String)) CODEC(ZSTD(1)),
    Spans SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    Errors SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    Services SimpleAggregateFunction(sumMap, Tuple(Array(String), Array(UInt64))) CODEC(ZSTD(1))
) ENGINE = AggregatingMergeTree
ORDER BY TraceId
TTL toDateTime(End) + toIntervalDay({ttl_days})
SETTINGS index_granularity = 1024, non_replicated_deduplication_window = 1000,
    fsync_after_insert = 1, fsync_part_directory = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS tracehouse_traces_mv
TO tracehouse_traces
AS SELECT
    TraceId,
    min(Timestamp) AS Start,
    -- Duration capped at a year, as in otel_traces_trace_id_ts_mv.
    max(Timestamp + toIntervalNanosecond(least(Duration, 31536000000000000))) AS End,
    min((ParentSpanId != '', Timestamp, toString(ServiceName), toString(SpanName))) AS Root,
    count() AS Spans,
    countIf(StatusCode = 'Error') AS Errors,
    sumMap([toString(ServiceName)], [toUInt64(1)]) AS Services
FROM otel_traces
WHERE TraceId != ''
GROUP BY TraceId
