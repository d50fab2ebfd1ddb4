-- Dependency links of a time range, summed over minutes; FINAL keeps the latest linking
-- of each minute.
SELECT Parent, Child, ChildKind, sum(Calls), sum(Errors), quantilesTDigestMerge(0.5, 0.95, 0.99)(Latency)
FROM tracehouse_links_1m FINAL
WHERE Minute >= toStartOfMinute(fromUnixTimestamp64Nano({start:Int64}))
  AND Minute < fromUnixTimestamp64Nano({end:Int64})
GROUP BY Parent, Child, ChildKind
ORDER BY Parent, Child
