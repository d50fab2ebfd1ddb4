SELECT DISTINCT ServiceName
FROM tracehouse_red_1m
WHERE Minute >= toStartOfMinute(fromUnixTimestamp64Nano({start:Int64}))
  AND Minute < fromUnixTimestamp64Nano({end:Int64})
ORDER BY ServiceName
