-- Values of one attribute key (span or resource) for autocomplete, over at most {sample} spans
-- that have the key; those starting with {prefix}, most frequent first.
SELECT v, count() AS n
FROM (
    SELECT if(mapContains(SpanAttributes, {key:String}), SpanAttributes[{key:String}],
              ResourceAttributes[{key:String}]) AS v
    FROM otel_traces
    WHERE Timestamp >= fromUnixTimestamp64Nano({start:Int64})
      AND Timestamp < fromUnixTimestamp64Nano({end:Int64})
      AND ({service:String} = '' OR ServiceName = {service:String})
      AND (mapContains(SpanAttributes, {key:String}) OR mapContains(ResourceAttributes, {key:String}))
    LIMIT {sample:UInt32}
)
WHERE startsWith(v, {prefix:String})
GROUP BY v
ORDER BY n DESC, v
LIMIT {limit:UInt32}
