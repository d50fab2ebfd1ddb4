-- Dependency links of a time range, summed over minutes, each minute as of its newest
-- complete linking (the linker writes a '__done__' row per minute after its links).
SELECT Parent, Child, ChildKind, sum(Calls), sum(Errors), quantilesTDigestMerge(0.5, 0.95, 0.99)(Latency)
FROM tracehouse_links_1m
WHERE Minute >= toStartOfMinute(fromUnixTimestamp64Nano({start:Int64}))
  AND Minute < fromUnixTimestamp64Nano({end:Int64})
  AND ChildKind != '__done__'
  AND (Minute, Version) IN (
      SELECT Minute, max(Version) FROM tracehouse_links_1m
      WHERE ChildKind = '__done__'
        AND Minute >= toStartOfMinute(fromUnixTimestamp64Nano({start:Int64}))
        AND Minute < fromUnixTimestamp64Nano({end:Int64})
      GROUP BY Minute
  )
GROUP BY Parent, Child, ChildKind
ORDER BY Parent, Child, ChildKind
