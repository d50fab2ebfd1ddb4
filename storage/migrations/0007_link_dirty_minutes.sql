-- The minutes each insert touched, and when: the linker relinks exactly those (and the
-- minutes after them where children of a late parent may be), however late spans arrive.
CREATE TABLE IF NOT EXISTS tracehouse_link_dirty (
    Minute DateTime,
    InsertedAt DateTime64(3)
) ENGINE = MergeTree
ORDER BY (InsertedAt, Minute)
TTL toDateTime(InsertedAt) + toIntervalDay(1);

CREATE MATERIALIZED VIEW IF NOT EXISTS tracehouse_link_dirty_mv
TO tracehouse_link_dirty
AS SELECT DISTINCT toStartOfMinute(Timestamp) AS Minute, now64(3) AS InsertedAt
FROM otel_traces
