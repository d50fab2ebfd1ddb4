-- Trace summaries in granules of 256 rows. Search summarises its 20-80 candidate traces by id,
-- one granule per id and part; on 1M traces 40 summaries read ~9 MB decompressed from granules of
-- 1,024 rows (20.6 ms) and 12.2 ms from granules of 256 (+0.2 bytes per span on disk). A table's
-- granule size is fixed when it is created, so the summaries move to a new table: the view now
-- writes there, the rows of the old table are copied (merged: one row per trace), and 0014 drops
-- it. Run again after a crash, the copy skips the traces already copied.
CREATE TABLE IF NOT EXISTS tracehouse_trace_summaries (
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
SETTINGS index_granularity = 256, min_compress_block_size = 4096, max_compress_block_size = 16384,
    non_replicated_deduplication_window = 1000, fsync_after_insert = 1, fsync_part_directory = 1;

DROP VIEW IF EXISTS tracehouse_traces_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS tracehouse_trace_summaries_mv
TO tracehouse_trace_summaries
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
GROUP BY TraceId;

-- FINAL merges the old table's rows by TraceId as it reads them (in key order, streaming); GLOBAL
-- so that on a cluster the set of ids already copied is built once, from every shard.
INSERT INTO tracehouse_trace_summaries
SELECT * FROM tracehouse_traces FINAL
WHERE TraceId GLOBAL NOT IN (SELECT TraceId FROM tracehouse_trace_summaries)
