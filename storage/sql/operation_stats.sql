-- Per-operation totals of one service over the whole minutes overlapping [start, end), from the
-- per-minute RED rollup: calls, errors, duration quantiles (t-digest), busiest first; and the
-- service's first minute in the range (epoch s, the same on every row), which rates are over.
SELECT SpanName, SpanKind, sum(Calls) AS calls, sum(Errors),
       quantilesTDigestMerge(0.5, 0.95, 0.99)(Latency),
       toUnixTimestamp(min(min(Minute)) OVER ())
FROM tracehouse_red_1m
WHERE ServiceName = {service:String}
  AND Minute >= toStartOfMinute(fromUnixTimestamp64Nano({start:Int64}))
  AND Minute < fromUnixTimestamp64Nano({end:Int64})
GROUP BY SpanName, SpanKind
ORDER BY calls DESC, SpanName, SpanKind
LIMIT {limit:UInt32}
