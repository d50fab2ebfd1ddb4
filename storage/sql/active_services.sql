-- Every service with spans in the whole minutes overlapping [start, end), and the first of those
-- minutes (epoch s): rates are over the seconds a service has sent spans, not the whole range.
SELECT ServiceName, toUnixTimestamp(min(Minute))
FROM tracehouse_red_1m
WHERE Minute >= toStartOfMinute(fromUnixTimestamp64Nano({start:Int64}))
  AND Minute < fromUnixTimestamp64Nano({end:Int64})
GROUP BY ServiceName
ORDER BY ServiceName
