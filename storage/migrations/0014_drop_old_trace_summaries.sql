-- The trace summaries in granules of 1,024 rows, copied to tracehouse_trace_summaries by 0013
-- (a migration of its own, so that 0013 run again after a crash still has it to copy from).
DROP TABLE IF EXISTS tracehouse_traces
