"""The dependency linker on the real embedded store: links between spans inserted in
different batches and in different minutes, databases/queues/peers as nodes, services
without links, relinking replaces instead of doubling."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from tests.integration.test_search import MS, S, add_trace
from tracehouse import wiring
from tracehouse.collector import IngestMetrics
from tracehouse.collector.zipkin import decode_zipkin_json
from tracehouse.storage import ClickHouseStore, SpanBatch, linker

pytestmark = pytest.mark.integration

MINUTE_NS = 60 * 10**9
T0 = (time.time_ns() // (10 * MINUTE_NS) - 1) * 10 * MINUTE_NS


def edges(
    store: ClickHouseStore, start: int = T0, end: int = T0 + 10 * MINUTE_NS
) -> dict[tuple[str, str, str], tuple[int, int]]:
    found = store.dependencies(start, end)
    return {(link.parent, link.child, link.child_kind): (link.calls, link.errors) for link in found.links}


def split_trace(store: ClickHouseStore, start: int, child_offset_ms: int, error: bool = False) -> None:
    """gateway -> orders, the two spans written in separate inserts, the child first."""
    whole = SpanBatch()
    add_trace(whole, start, [
        S("gateway", "GET /order", 0, child_offset_ms + 50, None, kind="Server"),
        S("gateway", "call orders", 1, child_offset_ms + 40, 0, kind="Client"),
        S("orders", "create", child_offset_ms, 30, 1, kind="Server", error=error),
    ])  # fmt: skip
    child, parents = whole.without({0, 1}), whole.without({2})
    store.write(child)
    store.write(parents)


def test_links_across_inserts_and_minutes(store: ClickHouseStore) -> None:
    split_trace(store, T0 + 5 * 1000 * MS, 0)
    split_trace(store, T0 + 59 * 1000 * MS, 2000, error=True)  # the child lands in the next minute
    store.link(T0, T0 + 10 * MINUTE_NS)
    assert edges(store) == {("gateway", "orders", "service"): (2, 1)}
    per_minute = [edges(store, T0 + m * MINUTE_NS, T0 + (m + 1) * MINUTE_NS) for m in (0, 1)]
    assert per_minute == [{("gateway", "orders", "service"): (1, 0)}, {("gateway", "orders", "service"): (1, 1)}]


def test_relinking_replaces_and_sees_late_spans(store: ClickHouseStore) -> None:
    split_trace(store, T0 + 1000 * MS, 0)
    store.link(T0, T0 + MINUTE_NS)
    store.link(T0, T0 + MINUTE_NS)
    assert edges(store) == {("gateway", "orders", "service"): (1, 0)}
    split_trace(store, T0 + 2000 * MS, 0)  # arrives after the first linking
    store.link(T0, T0 + MINUTE_NS)
    assert edges(store) == {("gateway", "orders", "service"): (2, 0)}


def test_databases_queues_peers_and_lonely_services(store: ClickHouseStore) -> None:
    batch = SpanBatch()
    add_trace(batch, T0, [
        S("orders", "POST /orders", 0, 20, None, kind="Server"),
        S("orders", "INSERT orders", 1, 5, 0, {"db.system": "sqlite", "db.name": "orders.db"}, kind="Client"),
        S("orders", "publish", 2, 1, 0, {"messaging.system": "kafka", "messaging.destination.name": "order-events"},
          kind="Producer"),
        S("orders", "GET fraud", 3, 9, 0, {"peer.service": "fraud-api"}, kind="Client", error=True),
    ])  # fmt: skip
    add_trace(batch, T0, [S("cron", "cleanup", 0, 1, None)])
    store.write(batch)
    store.link(T0, T0 + MINUTE_NS)
    found = store.dependencies(T0, T0 + 10 * MINUTE_NS)
    assert found.services == ("cron", "orders")
    assert edges(store) == {
        ("orders", "orders.db", "database"): (1, 0),
        ("orders", "order-events", "queue"): (1, 0),
        ("orders", "fraud-api", "peer"): (1, 1),
    }
    (db,) = [link for link in found.links if link.child_kind == "database"]
    assert db.p50_ns == db.p99_ns == 5 * MS


def test_links_are_the_same_whatever_the_slices(store: ClickHouseStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A window of many spans is linked in slices of its traces (`linker.SPANS_PER_SLICE`): a
    child meets its parent, and a client span the callee below it, in whichever slice their
    trace falls; links counted once. Here a slice of every two spans: 28 spans, 14 slices."""
    for second in range(4):
        split_trace(store, T0 + second * 1000 * MS, 0, error=second == 0)
        batch = SpanBatch()
        add_trace(batch, T0 + second * 1000 * MS, [
            S("orders", "POST /orders", 0, 20, None, kind="Server"),
            S("orders", "INSERT orders", 1, 5, 0, {"db.system": "sqlite", "db.name": "orders.db"}, kind="Client"),
            S("orders", "GET stock", 2, 9, 0, {"peer.service": "stock"}, kind="Client"),
            S("stock", "GET /", 3, 5, 2, kind="Server"),
        ])  # fmt: skip
        store.write(batch)
    expected = {
        ("gateway", "orders", "service"): (4, 1),
        ("orders", "orders.db", "database"): (4, 0),
        ("orders", "stock", "service"): (4, 0),
    }
    store.link(T0, T0 + MINUTE_NS)
    assert edges(store) == expected
    monkeypatch.setattr(linker, "SPANS_PER_SLICE", 2)
    store.link(T0, T0 + MINUTE_NS)
    assert edges(store) == expected
    rows = store.client().query(
        "SELECT count() FROM tracehouse_links_1m WHERE ChildKind = 'service'"
        " AND Version = (SELECT max(Version) FROM tracehouse_links_1m)"
    )
    assert rows.result_rows[0][0] > 2  # the newest linking did run in slices: several rows per link


def test_a_long_range_is_linked_in_generations_of_ten_minutes(store: ClickHouseStore) -> None:
    """A backlog of 25 minutes is three generations (`linker.GENERATION_MINUTES`), not one whose
    every slice rereads it all; a child in one meets its parent from the one before."""
    split_trace(store, T0 + 1000 * MS, 0)
    split_trace(store, T0 + 9 * MINUTE_NS + 59_000 * MS, 2000)  # parent at 9:59, child at 10:01
    split_trace(store, T0 + 24 * MINUTE_NS + 1000 * MS, 0, error=True)
    store.link(T0, T0 + 25 * MINUTE_NS)
    assert edges(store, T0, T0 + 30 * MINUTE_NS) == {("gateway", "orders", "service"): (3, 1)}
    assert edges(store, T0 + 10 * MINUTE_NS, T0 + 11 * MINUTE_NS) == {("gateway", "orders", "service"): (1, 0)}
    done = store.client().query(
        "SELECT toUnixTimestamp(min(Minute)), toUnixTimestamp(max(Minute)) FROM tracehouse_links_1m"
        " WHERE ChildKind = '__done__' GROUP BY Version ORDER BY 1"
    )
    assert [(int(first), int(last)) for first, last in done.result_rows] == [
        ((T0 + m * MINUTE_NS) // 10**9, (T0 + (n - 1) * MINUTE_NS) // 10**9) for m, n in ((0, 10), (10, 20), (20, 25))
    ]


def test_an_instrumented_callee_is_not_also_a_peer(store: ClickHouseStore) -> None:
    batch = SpanBatch()
    add_trace(batch, T0, [
        S("gateway", "GET /", 0, 20, None, kind="Server"),
        S("gateway", "GET orders", 1, 10, 0, {"peer.service": "orders", "server.address": "orders.lan"},
          kind="Client"),
        S("orders", "GET /", 2, 5, 1, kind="Server"),
    ])  # fmt: skip
    store.write(batch)
    store.link(T0, T0 + MINUTE_NS)
    assert edges(store) == {("gateway", "orders", "service"): (1, 0)}
    assert store.dependencies(T0 + 20 * MINUTE_NS, T0 + 30 * MINUTE_NS).links == ()


def test_a_peer_becomes_a_service_when_the_callee_spans_arrive(store: ClickHouseStore) -> None:
    whole = SpanBatch()
    add_trace(whole, T0, [
        S("caller", "GET /", 0, 20, None, kind="Server"),
        S("caller", "GET callee", 1, 10, 0, {"peer.service": "callee", "server.address": "callee.lan"}, kind="Client"),
        S("callee", "GET /", 2, 5, 1, kind="Server"),
    ])  # fmt: skip
    store.write(whole.without({2}))
    store.link(T0, T0 + MINUTE_NS)
    assert edges(store) == {("caller", "callee", "peer"): (1, 0)}
    store.write(whole.without({0, 1}))  # the callee's span, late
    store.link(T0, T0 + MINUTE_NS)
    assert edges(store) == {("caller", "callee", "service"): (1, 0)}


def test_late_spans_are_linked_by_when_they_arrived(store: ClickHouseStore) -> None:
    """Spans 40 minutes old arriving now (a spool replay, a slow exporter) are linked by the
    next run: the linker follows the minutes inserts touched, not a window of span time."""
    old = T0 - 40 * MINUTE_NS
    watermark = time.time_ns() // 10**6
    store.write(SpanBatch())  # nothing yet
    assert store.link_recent(watermark) == watermark
    split_trace(store, old + 1000 * MS, 0)
    late_parent = SpanBatch()
    add_trace(late_parent, old + 3000 * MS, [
        S("billing", "run", 0, 400_000, None, kind="Server"),
        S("ledger", "post", 240_000, 5, 0, kind="Server"),  # a child four minutes into its parent
    ])  # fmt: skip
    store.write(late_parent)
    watermark = store.link_recent(watermark)
    assert edges(store, old, old + 10 * MINUTE_NS) == {
        ("gateway", "orders", "service"): (1, 0),
        ("billing", "ledger", "service"): (1, 0),
    }
    assert store.link_recent(watermark) >= watermark


def test_an_incomplete_linking_never_hides_the_complete_one(store: ClickHouseStore) -> None:
    """A linking in progress (links written, its __done__ row not yet) must not replace the
    last complete one, even after the table's parts are merged."""
    split_trace(store, T0 + 1000 * MS, 0)
    store.link(T0, T0 + MINUTE_NS)
    store.client().command(
        "INSERT INTO tracehouse_links_1m SELECT Minute, Parent, Child, ChildKind, 99, 99, Latency, Version + 1 "
        "FROM tracehouse_links_1m WHERE ChildKind = 'service'"
    )
    store.client().command("OPTIMIZE TABLE tracehouse_links_1m FINAL")
    assert edges(store) == {("gateway", "orders", "service"): (1, 0)}
    versions = store.client().command("SELECT uniqExact(Version) FROM tracehouse_links_1m WHERE ChildKind = '__done__'")
    assert int(versions) == 1  # older complete generations were pruned


# 2M spans in two minutes: traces of 10 spans, span i (of service i) a child of span (i - 1) // 2,
# every 7th span an error.
_MANY_TRACES = """
INSERT INTO otel_traces
    (Timestamp, TraceId, SpanId, ParentSpanId, ServiceName, SpanName, SpanKind, Duration, StatusCode)
WITH intDiv(number, 10) AS trace, number % 10 AS span
SELECT fromUnixTimestamp64Nano(toInt64({t0:Int64} + trace * {gap:Int64} + span * 1000)),
       lower(hex(reinterpretAsFixedString(cityHash64(trace))))
           || lower(hex(reinterpretAsFixedString(cityHash64(trace, 1)))),
       lower(hex(reinterpretAsFixedString(cityHash64(trace, span)))),
       if(span = 0, '', lower(hex(reinterpretAsFixedString(cityHash64(trace, intDiv(span - 1, 2)))))),
       concat('s', toString(span)), 'op', 'Server', 1000000, if(number % 7 = 0, 'Error', 'Unset')
FROM numbers({spans:UInt64})
"""


def test_the_linker_needs_bounded_memory_however_many_spans_it_joins(
    store: ClickHouseStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over minutes at capacity a linking joins millions of children to their parents. Joined on
    the id strings in memory, 2M spans here needed ~300 MiB (measured) and grew with the window,
    until runs failed the engine's memory cap beside the inserts; the hashed, spilling join of
    `linker.SETTINGS` links them in ~128 MiB, still growing with the window; in slices of 500k
    spans, in under 80 MiB (measured). Run under a 96 MiB cap, every link counted."""
    spans, window = 2_000_000, 2 * MINUTE_NS
    store.client().command(_MANY_TRACES, parameters={"t0": T0, "gap": window // (spans // 10), "spans": spans})
    monkeypatch.setattr(linker, "SPANS_PER_SLICE", 500_000)
    monkeypatch.setitem(linker.SETTINGS, "max_memory_usage", 96 * 2**20)
    store.link(T0, T0 + window)
    expected: dict[tuple[str, str, str], tuple[int, int]] = {}
    for number in range(spans):
        child = number % 10
        if child:
            key = (f"s{(child - 1) // 2}", f"s{child}", "service")
            calls, errors = expected.get(key, (0, 0))
            expected[key] = (calls + 1, errors + (number % 7 == 0))
    assert edges(store) == expected


def test_linker_runs_are_counted_and_a_refused_run_is_tried_again_soon(
    store: ClickHouseStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """serve's linker loop counts its runs in /metrics: failed (here: the engine refuses the
    statements a byte of memory) and linked, with the time each successful run took. A run refused
    for memory is tried again soon, not an hour (`--link-interval`) later."""
    split_trace(store, T0 + 1000 * MS, 0)  # a dirty minute: every run has a statement to fail
    metrics = IngestMetrics()
    monkeypatch.setattr(wiring, "LINKER_BUSY_PAUSE_S", 0.01)

    def runs(outcome: str) -> float:
        return metrics.registry.get_sample_value("tracehouse_linker_runs_total", {"outcome": outcome}) or 0

    async def scenario() -> None:
        stop = asyncio.Event()
        monkeypatch.setitem(linker.SETTINGS, "max_memory_usage", 1)
        loop = asyncio.create_task(wiring._link_forever(store, 3600, stop, metrics))
        while runs("failed") < 3:
            await asyncio.sleep(0.01)
        assert runs("linked") == 0
        monkeypatch.delitem(linker.SETTINGS, "max_memory_usage")
        while runs("linked") < 1:
            await asyncio.sleep(0.01)
        stop.set()
        await loop

    asyncio.run(asyncio.wait_for(scenario(), 60))
    assert metrics.registry.get_sample_value("tracehouse_linker_seconds_count") == runs("linked") == 1
    assert edges(store) == {("gateway", "orders", "service"): (1, 0)}  # linked once it could


def test_a_run_refused_for_memory_is_tried_again_in_smaller_slices(
    store: ClickHouseStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At capacity the engine's cap can be too full for a linker run; serve's loop then tries again
    with half the spans per slice each time (`linker.SPANS_PER_SLICE` 2M, then 1M, 500k, 250k). Here
    2M spans under a 64 MiB cap: in one pass they need ~104 MiB, in slices of 1M ~80, 500k ~72, 250k
    ~48 (measured; a 96 MiB cap was too close, a run of 2M fit it once in CI). Without the smaller
    slices every run is refused and nothing is linked. The spans lie in the last hour, which the loop
    links first, again until a run has linked it (a restart under load)."""
    spans, window = 2_000_000, 2 * MINUTE_NS
    store.client().command(_MANY_TRACES, parameters={"t0": T0, "gap": window // (spans // 10), "spans": spans})
    monkeypatch.setattr(wiring, "LINKER_BUSY_PAUSE_S", 0.01)
    monkeypatch.setitem(linker.SETTINGS, "max_memory_usage", 64 * 2**20)
    metrics = IngestMetrics()
    slices_asked: list[int | None] = []
    link = store.link

    def recording(from_ns: int, to_ns: int, spans_per_slice: int | None = None) -> None:
        slices_asked.append(spans_per_slice)
        link(from_ns, to_ns, spans_per_slice)

    monkeypatch.setattr(store, "link", recording)

    def runs(outcome: str) -> float:
        return metrics.registry.get_sample_value("tracehouse_linker_runs_total", {"outcome": outcome}) or 0

    async def scenario() -> None:
        stop = asyncio.Event()
        loop = asyncio.create_task(wiring._link_forever(store, 3600, stop, metrics))
        while runs("linked") < 1:
            await asyncio.sleep(0.01)
        stop.set()
        await loop

    asyncio.run(asyncio.wait_for(scenario(), 120))
    assert runs("failed") >= 1
    assert slices_asked[0] == linker.SPANS_PER_SLICE
    assert slices_asked[-1] is not None
    assert slices_asked[-1] < linker.SPANS_PER_SLICE
    assert sum(calls for calls, _ in edges(store).values()) == spans - spans // 10


def _zipkin_span(
    trace: str, span: str, parent: str | None, kind: str | None, service: str, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"traceId": trace, "id": span, "name": "get", "timestamp": T0 // 1000 + 1_000_000,
                            "duration": 1000, "localEndpoint": {"serviceName": service}, **extra}  # fmt: skip
    if parent:
        body["parentId"] = parent
    if kind:
        body["kind"] = kind
    return body


def test_a_zipkin_shared_rpc_is_one_call(store: ClickHouseStore) -> None:
    """Brave and Sleuth report an RPC as one span id shared by the client and the server half
    (`shared`); the callee's own spans are children of that id, which the caller's client span
    carries too. Zipkin's linker counts the RPC once; so must ours — not once more per callee
    span, nor the client half again as a call to an uninstrumented peer."""
    calls_backend = {"remoteEndpoint": {"serviceName": "backend", "ipv4": "192.168.99.2", "port": 9000}}
    spans = [
        _zipkin_span("463ac35c9f6413ad", "a000000000000001", None, "SERVER", "frontend"),
        _zipkin_span("463ac35c9f6413ad", "a000000000000002", "a000000000000001", "CLIENT", "frontend", **calls_backend),
        _zipkin_span("463ac35c9f6413ad", "a000000000000002", "a000000000000001", "SERVER", "backend", shared=True),
        _zipkin_span("463ac35c9f6413ad", "a000000000000003", "a000000000000002", "CLIENT", "backend",
                     remoteEndpoint={"serviceName": "mysql"}),
        _zipkin_span("463ac35c9f6413ad", "a000000000000004", "a000000000000002", None, "backend"),
        # a shared RPC whose server half has no spans below it
        _zipkin_span("563ac35c9f6413ad", "b000000000000001", None, "SERVER", "frontend"),
        _zipkin_span("563ac35c9f6413ad", "b000000000000002", "b000000000000001", "CLIENT", "frontend", **calls_backend),
        _zipkin_span("563ac35c9f6413ad", "b000000000000002", "b000000000000001", "SERVER", "backend", shared=True),
        # a shared RPC from a root client (a command-line tool): the server half has no parent id
        _zipkin_span("663ac35c9f6413ad", "c000000000000001", None, "CLIENT", "cli", **calls_backend),
        _zipkin_span("663ac35c9f6413ad", "c000000000000001", None, "SERVER", "backend", shared=True),
        _zipkin_span("663ac35c9f6413ad", "c000000000000002", "c000000000000001", None, "backend"),
        # not shared: a callee that starts a span of no kind below the caller's client span
        _zipkin_span("763ac35c9f6413ad", "d000000000000001", None, "CLIENT", "cron", **calls_backend),
        _zipkin_span("763ac35c9f6413ad", "d000000000000002", "d000000000000001", None, "worker"),
    ]  # fmt: skip
    decoded = decode_zipkin_json(json.dumps(spans).encode())
    assert decoded.rejected == 0
    store.write(decoded.batch)
    store.link(T0, T0 + MINUTE_NS)
    assert edges(store) == {
        ("frontend", "backend", "service"): (2, 0),
        ("backend", "mysql", "peer"): (1, 0),
        ("cli", "backend", "service"): (1, 0),
        ("cron", "worker", "service"): (1, 0),
    }
