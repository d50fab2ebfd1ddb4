-- Search summarises its 20-80 candidate traces from tracehouse_traces, one granule per id and
-- part. Reading a granule decompresses whole blocks, by default at least 64 KiB of each column:
-- for 40 ids ~45 MB decompressed to return 40 rows (54 ms measured on 1M traces). Blocks of
-- 4-16 KiB: 26 ms, ~0.2 % more disk. New parts are written so; merges rewrite the old ones.
ALTER TABLE tracehouse_traces MODIFY SETTING min_compress_block_size = 4096, max_compress_block_size = 16384
