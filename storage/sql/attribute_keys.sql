-- Attribute keys for autocomplete: counted over at most {sample} spans of the range (the read
-- stops there), most frequent first. Scope is 'span' or 'resource'.
SELECT kv.1 AS key, kv.2 AS scope, count() AS n
FROM (
    SELECT SpanAttributes, ResourceAttributes
    FROM otel_traces
    WHERE Timestamp >= fromUnixTimestamp64Nano({start:Int64})
      AND Timestamp < fromUnixTimestamp64Nano({end:Int64})
      AND ({service:String} = '' OR ServiceName = {service:String})
    LIMIT {sample:UInt32}
)
ARRAY JOIN arrayConcat(
    arrayMap(k -> (k, 'span'), mapKeys(SpanAttributes)),
    arrayMap(k -> (k, 'resource'), mapKeys(ResourceAttributes))
) AS kv
GROUP BY key, scope
ORDER BY n DESC, key, scope
LIMIT {limit:UInt32}
