"""The dependency linker: joins child spans to their parents — which may have arrived in
other inserts, from other collectors — and writes per-minute links.

A materialized view sees one insert block only, so it cannot see both sides of a call that
arrived separately; this job reads the table instead.

Several collectors run it at once against one ClickHouse (server or cluster), with no leader,
and that is safe: each linking of a minute is a generation with a version of its own, closed
by a `__done__` row, and readers take each minute's newest complete generation. Two runs over
the same minutes, in any interleaving of their statements, leave what one run leaves: the
older generation is pruned by the newer or ignored beside it, and no generation is seen before
its `__done__` row (tests/integration/test_linker_concurrency.py runs every interleaving).
Versions are wall-clock µs plus one of 1000 salts per process, so two collectors practically
never share one. Each collector relinks every minute that inserts touched (the dirty minutes
are kept in ClickHouse, not in the process), after the insert, with a version above its own
earlier ones; so once a minute gets no more spans, its newest generation is one that saw them
all, whatever the skew between running collectors' clocks (a collector that stops with its
clock ahead leaves its last generations newest until the others' clocks pass them). The
price: each collector repeats the work.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from clickhouse_connect.driver.client import Client

MINUTE_NS = 60 * 10**9
#: How far before a child its parent may have started. A longer-running parent (a batch job
#: calling out after five minutes) is not linked; the cost of each run grows with this.
PARENT_LOOKBACK_NS = 5 * MINUTE_NS

#: Carried by every linker statement of this process (its `log_comment` setting), so that its
#: shutdown can cancel the one running — at full ingest one statement can run for minutes, and
#: SIGTERM must not wait for it — and not another collector's on the same server. A setting, not
#: a comment in the SQL: a statement with bound parameters reaches the engine re-formatted from
#: its syntax tree, without its comments (a `/* mark */` never matched, and shutdown waited).
_PROCESS = secrets.token_hex(8)
MARK = f"tracehouse dependency linker {_PROCESS}"
#: The service links' join (below) is held in memory up to 64 MiB, then spilled in buckets. No
#: insert deduplication: two slices of a generation (below) may write identical blocks of links,
#: which a replicated table (the cluster tier) would otherwise keep once.
SETTINGS = {
    "log_comment": MARK, "join_algorithm": "grace_hash", "max_bytes_in_join": 64 * 2**20, "insert_deduplicate": 0,
}  # fmt: skip
#: Cancels this process's running linker statements (bind `mark` = `MARK`).
CANCEL = "KILL QUERY WHERE Settings['log_comment'] = {mark:String} ASYNC"

# Written last: marks the generation `version` of each minute complete. Readers take, per
# minute, only the links of its newest complete generation — a relinking replaces the whole
# minute at once (links that no longer hold disappear), and readers never see it half done.
_DONE = """
INSERT INTO tracehouse_links_1m
SELECT toDateTime(intDiv({from:Int64}, 1000000000) + number * 60), '', '', '__done__', 0, 0,
       quantilesTDigestState(0.5, 0.95, 0.99)(toUInt64(0)), {version:UInt64}
FROM numbers(intDiv({to:Int64} - {from:Int64}, 60000000000))
GROUP BY number
"""

# Once generation `version` is complete, the older ones of its minutes are never read again.
_PRUNE = """
DELETE FROM tracehouse_links_1m
WHERE Minute >= toStartOfMinute(fromUnixTimestamp64Nano({from:Int64}))
  AND Minute < fromUnixTimestamp64Nano({to:Int64})
  AND Version < {version:UInt64}
"""

# The ids of the Zipkin shared RPCs of the slice (Brave and Sleuth report an RPC as one span id
# shared by the client and the server half): their server halves, marked `zipkin.shared` by the
# Zipkin decoder. The span attribute keys' bloom filter skips the granules without that key, so
# spans from OTLP cost next to nothing here.
_SHARED_IDS = """SELECT cityHash64(TraceId, SpanId) FROM otel_traces
      WHERE Timestamp >= fromUnixTimestamp64Nano({parents_from:Int64})
        AND Timestamp < fromUnixTimestamp64Nano({to_children:Int64})
        AND SpanKind = 'Server' AND mapContains(SpanAttributes, 'zipkin.shared')
        AND cityHash64(TraceId) % {slices:UInt64} = {slice:UInt64}"""

# A child and its parent meet on a 64-bit hash of (TraceId, span id), not on the two hex strings,
# and the children — the join's right side, the one held in memory — spill to disk in buckets
# past `max_bytes_in_join` (a grace-hash join, `SETTINGS`). Over minutes at capacity the window
# holds millions of children, and the in-memory join of strings failed the engine's memory cap
# beside the inserts: on 12M spans a whole generation took 13-14 s of CPU and over 768 MiB; now
# 7 s and ~200 MiB (BENCHMARKS.md, session 11). Two distinct pairs share a hash with odds of
# ~n*m/2^64 (~1e-5 for ten million spans on each side): a link miscounted once in a great while.
# Both sides are subqueries, so on a cluster the join runs on the collector's server over the
# two hashed projections of every shard (the string join ran on each shard; a trace lives on one).
# The grace-hash join still overshoots its bound: 256 MiB for 8M children (session 14). So a
# window of many spans is linked in slices of its traces (`SLICED`), each pass joining 1/slices of
# the children: 5 slices of that window, 128 MiB.
# A shared RPC is one call, as Zipkin's linker counts it: its server half meets its client half on
# their common id (`Shared`; also when the client half is a root), and the callee's spans below that
# id meet the server half only — not the client half (`SharedClient`), which each of them would
# otherwise count as a call from the caller.
_SERVICE_LINKS = """
INSERT INTO tracehouse_links_1m
SELECT c.Minute, p.ServiceName, c.ServiceName, 'service',
       count(), countIf(c.Error), quantilesTDigestState(0.5, 0.95, 0.99)(c.Duration), {version:UInt64}
FROM (
    SELECT cityHash64(TraceId, SpanId) AS Key, ServiceName,
           SpanKind = 'Client' AND Key IN (SHARED_IDS) AS SharedClient
    FROM otel_traces
    WHERE Timestamp >= fromUnixTimestamp64Nano({parents_from:Int64})
      AND Timestamp < fromUnixTimestamp64Nano({to:Int64})
      AND cityHash64(TraceId) % {slices:UInt64} = {slice:UInt64}
) AS p
INNER JOIN (
    SELECT cityHash64(TraceId, ParentSpanId) AS Key, toStartOfMinute(Timestamp) AS Minute, ServiceName,
           StatusCode = 'Error' AS Error, Duration, 0 AS Shared
    FROM otel_traces
    WHERE Timestamp >= fromUnixTimestamp64Nano({from:Int64}) AND Timestamp < fromUnixTimestamp64Nano({to:Int64})
      AND ParentSpanId != '' AND cityHash64(TraceId) % {slices:UInt64} = {slice:UInt64}
      AND NOT (SpanKind = 'Server' AND cityHash64(TraceId, SpanId) IN (SHARED_IDS))
    UNION ALL
    SELECT cityHash64(TraceId, SpanId), toStartOfMinute(Timestamp), ServiceName, StatusCode = 'Error', Duration, 1
    FROM otel_traces
    WHERE Timestamp >= fromUnixTimestamp64Nano({from:Int64}) AND Timestamp < fromUnixTimestamp64Nano({to:Int64})
      AND SpanKind = 'Server' AND mapContains(SpanAttributes, 'zipkin.shared')
      AND cityHash64(TraceId) % {slices:UInt64} = {slice:UInt64}
) AS c ON p.Key = c.Key
WHERE p.ServiceName != c.ServiceName AND (c.Shared OR NOT p.SharedClient)
GROUP BY c.Minute, p.ServiceName, c.ServiceName
""".replace("SHARED_IDS", _SHARED_IDS)

# Client/producer spans naming a database, a queue or a peer, with no span of another
# service below them: the callee is not instrumented, so it becomes a node of its own. The client
# half of a Zipkin shared RPC has its server half (`_SHARED_IDS`), even with nothing below.
_PEER_LINKS = """
INSERT INTO tracehouse_links_1m
SELECT Minute, ServiceName, Peer, Kind, count(), countIf(StatusCode = 'Error'),
       quantilesTDigestState(0.5, 0.95, 0.99)(Duration), {version:UInt64}
FROM (
    SELECT
        toStartOfMinute(Timestamp) AS Minute, ServiceName, StatusCode, Duration,
        multiIf(SpanAttributes['db.system'] != '', 'database',
                SpanAttributes['messaging.system'] != '', 'queue', 'peer') AS Kind,
        multiIf(Kind = 'database', coalesce(nullIf(SpanAttributes['db.name'], ''), SpanAttributes['db.system']),
                Kind = 'queue', coalesce(nullIf(SpanAttributes['messaging.destination.name'], ''),
                                         SpanAttributes['messaging.system']),
                coalesce(nullIf(SpanAttributes['peer.service'], ''), SpanAttributes['server.address'],
                         SpanAttributes['net.peer.name'])) AS Peer,
        TraceId, SpanId
    FROM otel_traces
    WHERE Timestamp >= fromUnixTimestamp64Nano({from:Int64}) AND Timestamp < fromUnixTimestamp64Nano({to:Int64})
      AND SpanKind IN ('Client', 'Producer') AND cityHash64(TraceId) % {slices:UInt64} = {slice:UInt64}
)
WHERE Peer != ''
  -- a queue stays a node whatever runs below the producer (its consumer may be a child)
  -- hashed as in _SERVICE_LINKS: the set of every child of the slice (2M spans: 60 MiB, not 200)
  AND (Kind = 'queue' OR cityHash64(TraceId, SpanId) NOT IN (
      SELECT cityHash64(TraceId, ParentSpanId) FROM otel_traces
      WHERE Timestamp >= fromUnixTimestamp64Nano({from:Int64})
        AND Timestamp < fromUnixTimestamp64Nano({to_children:Int64}) AND ParentSpanId != ''
        AND cityHash64(TraceId) % {slices:UInt64} = {slice:UInt64}
      UNION ALL
      SHARED_IDS
  ))
GROUP BY Minute, ServiceName, Peer, Kind
""".replace("SHARED_IDS", _SHARED_IDS)

#: The ChildKind of a queue -> consumer link: its Parent is a queue, its Child a service.
CONSUMER_KIND = "consumer"

# Consumer spans naming a queue: the queue's messages reach the consuming service, whether
# the consumer continues the producer's trace or (as the messaging conventions advise) links it.
_CONSUMER_LINKS = """
INSERT INTO tracehouse_links_1m
SELECT Minute, Queue, ServiceName, 'consumer', count(), countIf(StatusCode = 'Error'),
       quantilesTDigestState(0.5, 0.95, 0.99)(Duration), {version:UInt64}
FROM (
    SELECT
        toStartOfMinute(Timestamp) AS Minute, ServiceName, StatusCode, Duration,
        coalesce(nullIf(SpanAttributes['messaging.destination.name'], ''), SpanAttributes['messaging.system']) AS Queue
    FROM otel_traces
    WHERE Timestamp >= fromUnixTimestamp64Nano({from:Int64}) AND Timestamp < fromUnixTimestamp64Nano({to:Int64})
      AND SpanKind = 'Consumer' AND SpanAttributes['messaging.system'] != ''
)
WHERE Queue != ''
GROUP BY Minute, Queue, ServiceName
"""


#: A generation's statements, in order: its links, then its `__done__` rows, then the pruning
#: of the older generations of its minutes.
GENERATION = (_SERVICE_LINKS, _PEER_LINKS, _CONSUMER_LINKS, _DONE, _PRUNE)
#: The statements run once per slice: each over the traces whose id hashes to the slice (a child
#: and its parent share a trace, so a slice holds both). Their link rows add up across slices, as
#: readers sum a minute's rows anyway. The others hold no more than a row per link in memory.
SLICED = frozenset((_SERVICE_LINKS, _PEER_LINKS))
#: Spans of the window per slice. On 8.1M children (bench-query's store, 44 minutes) 5 slices of
#: at most this many spans stayed under 128 MiB of the engine's memory (one pass: 256 MiB) and took
#: 10.8 s instead of 5.9 — each pass reads the window again — beside inserts and merges sharing
#: the 768 MiB cap at full ingest (session 14, BENCHMARKS.md).
SPANS_PER_SLICE = 2_000_000
#: The fewest spans per slice serve asks for when the engine refuses runs for memory (it halves
#: `SPANS_PER_SLICE` per refused run in a row): 2M spans need ~128 MiB, 500k under 80 MiB.
MIN_SPANS_PER_SLICE = 250_000
#: Minutes linked by one generation at most. Each slice reads the whole window again, so a long
#: backlog (minutes left dirty by failed runs, a spool replayed) as one generation would cost
#: slices × window; in generations of this many minutes it costs in proportion to its spans.
GENERATION_MINUTES = 10
_SPANS = """
SELECT count() FROM otel_traces
WHERE Timestamp >= fromUnixTimestamp64Nano({from:Int64}) AND Timestamp < fromUnixTimestamp64Nano({to_children:Int64})
"""
#: Low digits of every version this process writes: distinct collectors, distinct versions.
_SALT = secrets.randbelow(1000)


def new_version() -> int:
    """A generation version: µs since the epoch × 1000 + this process's salt."""
    return time.time_ns() // 1000 * 1000 + _SALT


def generation_parameters(from_ns: int, to_ns: int, version: int) -> dict[str, Any]:
    """Bound parameters of the `GENERATION` statements for the whole minutes in [from_ns, to_ns)."""
    start = from_ns // MINUTE_NS * MINUTE_NS
    end = -(-to_ns // MINUTE_NS) * MINUTE_NS
    return {
        "from": start, "to": end, "parents_from": start - PARENT_LOOKBACK_NS,
        "to_children": end + MINUTE_NS, "version": version, "slices": 1, "slice": 0,
    }  # fmt: skip


def link_minutes(
    client: Client, from_ns: int, to_ns: int, version: int | None = None, spans_per_slice: int | None = None
) -> None:
    """(Re)compute the links of the whole minutes in [from_ns, to_ns): a generation per
    `GENERATION_MINUTES`, each in as many slices of its traces as its spans need at
    `spans_per_slice` (default `SPANS_PER_SLICE`) spans each."""
    step = GENERATION_MINUTES * MINUTE_NS
    per_slice = SPANS_PER_SLICE if spans_per_slice is None else spans_per_slice
    for start in range(from_ns // MINUTE_NS * MINUTE_NS, to_ns, step):
        end = min(start + step, to_ns)
        _link_generation(client, start, end, version if version is not None else new_version(), per_slice)


def _link_generation(client: Client, from_ns: int, to_ns: int, version: int, spans_per_slice: int) -> None:
    params = generation_parameters(from_ns, to_ns, version)
    spans = int(client.query(_SPANS, parameters=params, settings=SETTINGS).result_rows[0][0])
    slices = max(1, -(-spans // spans_per_slice))
    for statement in GENERATION:
        for piece in range(slices if statement in SLICED else 1):
            client.command(statement, parameters={**params, "slices": slices, "slice": piece}, settings=SETTINGS)


_DIRTY = """
SELECT DISTINCT toUnixTimestamp(Minute), toUnixTimestamp64Milli(InsertedAt)
FROM tracehouse_link_dirty
WHERE InsertedAt > fromUnixTimestamp64Milli({since:Int64})
"""
#: Inserts commit out of order by a little; minutes inserted this close before the
#: watermark are looked at again (relinking twice is harmless).
OVERLAP_MS = 10_000


def link_dirty(client: Client, since_ms: int, spans_per_slice: int | None = None) -> int:
    """Relink the minutes touched by inserts after `since_ms` (epoch ms), and the minutes up
    to `PARENT_LOOKBACK_NS` after each (children of a late parent), in slices of
    `spans_per_slice` spans (`link_minutes`). Returns the new watermark."""
    rows = client.query(_DIRTY, parameters={"since": since_ms - OVERLAP_MS}, settings=SETTINGS).result_rows
    if not rows:
        return since_ms
    for start, end in _ranges(sorted({int(minute) * 10**9 for minute, _ in rows})):
        link_minutes(client, start, end, spans_per_slice=spans_per_slice)
    return max(int(inserted) for _, inserted in rows)


def _ranges(minutes: list[int]) -> list[tuple[int, int]]:
    """Sorted minute starts -> merged [start, end) ranges covering each minute and the
    lookback after it."""
    merged: list[tuple[int, int]] = []
    for minute in minutes:
        end = minute + MINUTE_NS + PARENT_LOOKBACK_NS
        if merged and minute <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((minute, end))
    return merged
