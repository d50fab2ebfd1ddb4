-- Dependency links per minute: parent service -> child service (or database, queue,
-- un-instrumented peer), with calls, errors and the child spans' duration quantiles.
-- Written by the linker (storage/linker.py), which joins child and parent spans that may
-- have arrived in different inserts. Each linking of a minute is a generation (Version) closed
-- by a '__done__' row; readers take each minute's newest complete generation, and the linker
-- deletes older generations once a newer one is complete (a Replacing engine would merge an
-- incomplete generation over the last complete one).
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
TTL Minute + toIntervalDay({ttl_days})
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1
