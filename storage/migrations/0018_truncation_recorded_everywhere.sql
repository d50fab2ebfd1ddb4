-- A value's cut is judged by the measure the cut uses (0004: leftUTF8, characters), not bytes: a
-- 40,000-character value of 80 KB was marked tracehouse.truncated and kept whole. The resource's,
-- events' and links' maps, which the view cuts without marking, are marked by the collector before
-- the insert (collector/caps.py); doing it here made the view's plan, paid by every insert, ~10-40 ms
-- longer (a 10-span insert, min of 25: 103-108 ms, 119-122 with the resource's mark, 143-153 with
-- the events' and links' too).
CREATE OR REPLACE FUNCTION tracehouse_otlp_truncated AS (kvs) -> length(kvs) > 1024 OR arrayExists(
    kv -> lengthUTF8(tupleElement(kv, 'key')) > 256
        OR lengthUTF8(tupleElement(tupleElement(kv, 'value'), 'string_value')) > 65536
        OR length(tupleElement(tupleElement(kv, 'value'), 'bytes_value')) > 49152, kvs)
