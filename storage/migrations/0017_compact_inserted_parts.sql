-- An insert of ~20k spans made a wide part: one file per column and subcolumn (138 files), each
-- written through its own buffers and fsync'd (fsync_after_insert): 176 fsyncs per insert over the
-- six tables, ~110 ms of each insert spent waiting on them here. Parts under 100k rows are now
-- compact (one data file): 62 fsyncs per insert. Merged parts past 100k rows are wide as before
-- (their attribute maps in buckets, 0012). Measured in-process, 1.2M spans in 20k-span inserts,
-- merges running, two runs each: 20.9 / 20.9 -> 19.5 / 19.7 us of CPU per span, fsync time
-- 13.2 / 11.8 -> 2.3 / 2.1 s; 1M rows as the bound: 20.4 / 20.7 (merging big compact parts costs more).
ALTER TABLE otel_traces MODIFY SETTING min_rows_for_wide_part = 100000
