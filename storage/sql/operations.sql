SELECT SpanName, SpanKind, sum(Spans)
FROM tracehouse_operations
WHERE ServiceName = {service:String}
GROUP BY SpanName, SpanKind
ORDER BY SpanName, SpanKind
