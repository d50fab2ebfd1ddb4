-- Breaker and thread-pool stats: one row per cluster × kind × name × instance × second, holding
-- that second's *deltas* (counts by outcome, a mergeable latency histogram), so any window of any
-- set of instances adds up exactly. A retried report writes the same key again: ReplacingMergeTree
-- keeps one, and readers use FINAL over their (small) time range.
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
TTL Timestamp + toIntervalDay({ttl_days})
SETTINGS ttl_only_drop_parts = 1, fsync_after_insert = 1, fsync_part_directory = 1
