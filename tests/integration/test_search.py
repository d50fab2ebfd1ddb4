"""Trace search on the real embedded store: each filter operator, filters on one span,
time range, newest-first order and its stability, summaries of whole traces, hostile values."""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from tracehouse.storage import (
    AttributeFilter,
    ClickHouseStore,
    InvalidQuery,
    SpanBatch,
    StoreConfig,
    TraceQuery,
    open_store,
)
from tracehouse.storage.client import connect, ensure_database
from tracehouse.storage.migrate import VERSION_TABLE, VERSION_TABLE_NAME, migrations

pytestmark = pytest.mark.integration

MS = 1_000_000
NOW = time.time_ns() - 60_000 * MS  # a minute ago


@dataclass
class S:
    service: str
    name: str
    start_ms: int = 0
    duration_ms: int = 1
    parent: int | None = 0  # index of the parent span in the trace; None for the root
    attrs: dict[str, str] = field(default_factory=dict)
    resource: dict[str, str] = field(default_factory=dict)
    error: bool = False
    kind: str = "Server"


def add_trace(batch: SpanBatch, start_ns: int, spans: list[S]) -> str:
    trace_id = os.urandom(16).hex()
    ids = [os.urandom(8).hex() for _ in spans]
    for span, span_id in zip(spans, ids, strict=True):
        columns = {
            "timestamp_ns": start_ns + span.start_ms * MS,
            "trace_id": trace_id,
            "span_id": span_id,
            "parent_span_id": "" if span.parent is None else ids[span.parent],
            "trace_state": "",
            "span_name": span.name,
            "span_kind": span.kind,
            "service_name": span.service,
            "resource_attributes": {"service.name": span.service, **span.resource},
            "scope_name": "",
            "scope_version": "",
            "span_attributes": span.attrs,
            "duration_ns": span.duration_ms * MS,
            "status_code": "Error" if span.error else "Unset",
            "status_message": "",
        }
        for name, value in columns.items():
            getattr(batch, name).append(value)
        for name in ("event_timestamp_ns", "event_name", "event_attributes", "link_trace_id", "link_span_id",
                     "link_trace_state", "link_attributes"):  # fmt: skip
            getattr(batch, name).append([])
    return trace_id


@pytest.fixture
def seeded(store: ClickHouseStore) -> dict[str, str]:
    """Five traces, a minute apart, newest last; returns name -> trace id."""
    batch = SpanBatch()
    traces = {
        "checkout": [
            S("gateway", "GET /checkout", 0, 120, None, {"http.status_code": "200"}, {"env": "prod"}),
            S("orders", "create", 5, 80, 0, {"db.system": "sqlite", "order.id": "o-17"}),
            S("payments", "charge", 90, 25, 0, {"card": "visa"}, error=True),
        ],
        "browse": [
            S("gateway", "GET /items", 0, 30, None, {"http.status_code": "200"}, {"env": "prod"}),
            S("inventory", "list", 2, 20, 0, {"db.system": "postgresql"}),
        ],
        "slow": [
            S("gateway", "GET /checkout", 0, 2500, None, {"http.status_code": "504"}, {"env": "staging"}),
            S("payments", "charge", 10, 2400, 0, {"card": "amex"}),
        ],
        "lonely": [S("cron", "cleanup", 0, 5, None, {"job": "it's \\ weird", "note": ""})],
        "late": [  # the newest: its root starts inside the window, a child 2 hours later
            S("gateway", "GET /report", 0, 10, None, {}, {"env": "prod"}),
            S("reports", "render", 7_200_000, 50, 0),
        ],
    }
    ids = {}
    for minute, (name, spans) in enumerate(traces.items()):
        ids[name] = add_trace(batch, NOW - (len(traces) - minute) * 60_000 * MS, spans)
    store.write(batch)
    return ids


def search(store: ClickHouseStore, **conditions: object) -> list[str]:
    query = TraceQuery(start_ns=NOW - 3_600_000 * MS, end_ns=NOW + 60_000 * MS, **conditions)  # type: ignore[arg-type]
    return [summary.trace_id for summary in store.find_traces(query)]


def named(ids: dict[str, str], *names: str) -> list[str]:
    return [ids[name] for name in names]


def attr(key: str, op: str, value: str = "") -> tuple[AttributeFilter, ...]:
    return (AttributeFilter(key, op, value),)


def test_everything_newest_first(store: ClickHouseStore, seeded: dict[str, str]) -> None:
    assert search(store) == named(seeded, "late", "lonely", "slow", "browse", "checkout")


def test_service_and_operation_on_the_same_span(store: ClickHouseStore, seeded: dict[str, str]) -> None:
    assert search(store, service="payments") == named(seeded, "slow", "checkout")
    assert search(store, service="gateway", operation="GET /checkout") == named(seeded, "slow", "checkout")
    assert search(store, service="gateway", operation="charge") == []  # charge is a payments span


def test_duration_bounds_apply_to_one_span(store: ClickHouseStore, seeded: dict[str, str]) -> None:
    assert search(store, min_duration_ns=1000 * MS) == named(seeded, "slow")
    assert search(store, min_duration_ns=20 * MS, max_duration_ns=25 * MS) == named(seeded, "browse", "checkout")
    assert search(store, service="orders", min_duration_ns=100 * MS) == []


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (attr("db.system", "=", "sqlite"), ["checkout"]),
        (attr("env", "=", "prod"), ["late", "browse", "checkout"]),  # a resource attribute
        (attr("http.status_code", "!=", "200"), ["slow"]),  # present and different
        (attr("card", "=~", "^(visa|mc)$"), ["checkout"]),
        (attr("db.system", "exists"), ["browse", "checkout"]),
        # late's render span has neither, but starts after the window: only spans inside it match
        (attr("card", "absent") + attr("env", "absent"), ["lonely", "browse", "checkout"]),
        (attr("env", "=", "prod") + attr("http.status_code", "=", "200"), ["browse", "checkout"]),
        (attr("job", "=", "it's \\ weird"), ["lonely"]),
        (attr("note", "=", ""), ["lonely"]),  # present and empty; absent is not equal to ''
        (attr("env", "=", "") + attr("service.name", "=", "cron"), []),
        (attr("no.such.key", "exists"), []),
    ],
)
def test_attribute_operators(
    store: ClickHouseStore, seeded: dict[str, str], filters: tuple[AttributeFilter, ...], expected: list[str]
) -> None:
    assert search(store, attributes=filters) == named(seeded, *expected)


def test_errors_only(store: ClickHouseStore, seeded: dict[str, str]) -> None:
    assert search(store, errors_only=True) == named(seeded, "checkout")


def test_time_range_and_limit(store: ClickHouseStore, seeded: dict[str, str]) -> None:
    window = TraceQuery(start_ns=NOW - 3 * 60_000 * MS - 1, end_ns=NOW - 60_000 * MS)
    assert [s.trace_id for s in store.find_traces(window)] == named(seeded, "lonely", "slow")
    assert search(store, limit=2) == named(seeded, "late", "lonely")


def test_summaries_cover_the_whole_trace(store: ClickHouseStore, seeded: dict[str, str]) -> None:
    query = TraceQuery(start_ns=NOW - 3_600_000 * MS, end_ns=NOW + 60_000 * MS, service="gateway")
    summaries = {s.trace_id: s for s in store.find_traces(query)}
    checkout = summaries[seeded["checkout"]]
    assert (checkout.root_service, checkout.root_operation) == ("gateway", "GET /checkout")
    assert (checkout.span_count, checkout.error_count, checkout.duration_ns) == (3, 1, 120 * MS)
    assert checkout.services == (("gateway", 1), ("orders", 1), ("payments", 1))
    late = summaries[seeded["late"]]
    assert late.duration_ns == (7_200_000 + 50) * MS  # the child two hours later counts too
    assert late.span_count == 2


def test_equal_starts_are_ordered_by_trace_id(store: ClickHouseStore) -> None:
    batch = SpanBatch()
    ids = [add_trace(batch, NOW, [S("twin", "same", 0, 1, None)]) for _ in range(5)]
    store.write(batch)
    assert search(store, service="twin") == sorted(ids, reverse=True)
    assert search(store, service="twin", limit=3) == sorted(ids, reverse=True)[:3]


def test_a_regex_that_does_not_compile_is_an_invalid_query(store: ClickHouseStore, seeded: dict[str, str]) -> None:
    with pytest.raises(InvalidQuery):
        search(store, attributes=attr("card", "=~", "(unclosed"))


@pytest.mark.parametrize(
    "hostile", ["' OR 1=1 --", "x'); DROP TABLE otel_traces; --", "\\", "{k0:String}", "ü" * 10_000]
)
def test_hostile_values_are_only_values(store: ClickHouseStore, seeded: dict[str, str], hostile: str) -> None:
    assert search(store, service=hostile) == []
    assert search(store, operation=hostile, attributes=attr(hostile, "=", hostile)) == []
    assert search(store, attributes=attr(hostile, "absent")) == named(
        seeded, "late", "lonely", "slow", "browse", "checkout"
    )
    assert len(search(store)) == 5


def test_newest_first_is_by_trace_start_not_by_matching_span(store: ClickHouseStore) -> None:
    batch = SpanBatch()
    older = add_trace(batch, NOW - 10 * 60_000 * MS, [S("a", "root", 0, 1, None), S("b", "late child", 300_000, 1, 0)])
    newer = add_trace(batch, NOW - 8 * 60_000 * MS, [S("b", "root", 0, 1, None)])
    store.write(batch)
    assert search(store, service="b") == [newer, older]
    assert search(store, service="b", limit=1) == [newer]


def test_newest_first_reads_windows_yet_answers_exactly(store: ClickHouseStore) -> None:
    """Searches read the newest minute first and widen; the answer must be the one a read of
    the whole range gives. Traces start all over the hour, some with a matching span long
    after their start (which ranks by start, not by that span), many in the newest minute."""
    rng = random.Random(3)
    batch = SpanBatch()
    starts = {}
    for i in range(120):
        start = NOW - rng.randrange(0, 3_540_000 if i % 3 else 90_000) * MS
        spans = [S("front", "root", 0, 5, None, {"tier": "gold" if rng.random() < 0.5 else "free"})]
        if rng.random() < 0.3:  # a late child: the newest matching span of an old trace
            spans.append(S("back", "late", rng.randrange(1, 1_500_000), 1, 0, {"tier": "gold"}))
        starts[add_trace(batch, start, spans)] = (start, spans)
    store.write(batch)
    end = NOW + 60_000 * MS

    def expected(predicate: Callable[[S, int], bool], limit: int) -> list[str]:
        matching = [(start, t) for t, (start, spans) in starts.items()
                    if any(predicate(s, start + s.start_ms * MS) for s in spans)]  # fmt: skip
        return [t for _, t in sorted(matching, reverse=True)[:limit]]

    def in_range(span: S, at: int) -> bool:
        return end - 3_600_000 * MS <= at < end

    for limit in (1, 3, 20, 50, 200):
        assert search(store, service="front", limit=limit) == expected(
            lambda s, at: in_range(s, at) and s.service == "front", limit
        )
        assert search(store, attributes=attr("tier", "=", "gold"), limit=limit) == expected(
            lambda s, at: in_range(s, at) and s.attrs.get("tier") == "gold", limit
        )


def test_late_children_do_not_crowd_out_newer_traces(store: ClickHouseStore) -> None:
    """More traces than the search first asks for have their newest matching span (a late
    child) in the newest minute, yet started before traces whose only span is older."""
    batch = SpanBatch()
    crowd = [add_trace(batch, NOW - (50_000 + i) * MS, [S("x", "root", 0, 1, None), S("x", "child", 49_000, 1, 0)])
             for i in range(30)]  # fmt: skip
    newer = [add_trace(batch, NOW - (10_000 + i) * MS, [S("x", "root", 0, 1, None)]) for i in range(3)]
    store.write(batch)
    assert search(store, service="x", limit=3) == newer
    assert search(store, service="x", limit=5) == [*newer, *crowd[:2]]


def test_traces_stored_before_the_trace_table_are_summarised_from_their_spans(
    store: ClickHouseStore, seeded: dict[str, str]
) -> None:
    before = store.find_traces(TraceQuery(start_ns=NOW - 3_600_000 * MS, end_ns=NOW + 60_000 * MS))
    store.client().command("TRUNCATE TABLE tracehouse_trace_summaries")  # as if stored before migration 0009
    after = store.find_traces(TraceQuery(start_ns=NOW - 3_600_000 * MS, end_ns=NOW + 60_000 * MS))
    assert after == before
    assert [s.trace_id for s in after] == named(seeded, "late", "lonely", "slow", "browse", "checkout")


def test_upgrading_to_schema_13_keeps_the_summaries_of_stored_traces(store_config: StoreConfig) -> None:
    """Migration 0013 moves the trace summaries to a table of smaller granules and copies the old
    table's rows, merged; 0014 drops the old table. A store made at schema 12 answers the same."""
    ensure_database(store_config)
    client = connect(store_config)
    client.command(VERSION_TABLE)
    for migration in migrations(ttl_days=7)[:12]:
        for statement in migration.statements:
            client.command(statement)
        client.insert(VERSION_TABLE_NAME, [[migration.version, migration.name]], column_names=["Version", "Name"])
    client.close()
    old = open_store(store_config, migrate=False)
    first, second = SpanBatch(), SpanBatch()
    ids = [add_trace(first, NOW - i * 1000 * MS, [S("web", f"GET /{i}", 0, 30, None), S("db", "query", 5, 9)])
           for i in range(5)]  # fmt: skip
    # one trace's spans in two inserts: two rows of the old table, which the copy must merge
    late = add_trace(first, NOW - 9000 * MS, [S("web", "GET /late", 0, 40, None), S("auth", "check", 2, 3, error=True)])
    add_trace(second, NOW - 9000 * MS, [S("web", "x", 10, 1)])
    second.trace_id[0] = late
    old.write(first)
    old.write(second)
    assert old.client().query("SELECT count() FROM tracehouse_traces").result_rows[0][0] == 7
    old.close()

    store = open_store(store_config)
    try:
        tables = {row[0] for row in store.client().query("SHOW TABLES").result_rows}
        assert "tracehouse_traces" not in tables
        assert "tracehouse_traces_mv" not in tables
        rows = store.client().query("SELECT count() FROM tracehouse_trace_summaries").result_rows[0][0]
        assert rows == 6  # one row per trace
        query = TraceQuery(start_ns=NOW - 3_600_000 * MS, end_ns=NOW + 60_000 * MS)
        upgraded = store.find_traces(query)
        assert [s.trace_id for s in upgraded] == [*ids, late]
        assert (upgraded[-1].span_count, upgraded[-1].error_count) == (3, 1)
        store.client().command("TRUNCATE TABLE tracehouse_trace_summaries")
        assert store.find_traces(query) == upgraded  # what the spans themselves say
    finally:
        store.client().command("DROP DATABASE IF EXISTS {db:Identifier}", parameters={"db": store_config.database})
        store.close()


def test_the_calls_of_a_service_map_edge(store: ClickHouseStore, seeded: dict[str, str]) -> None:
    # service → service: spans of the callee whose parent is a span of the caller
    assert search(store, service="payments", parent_service="gateway") == named(seeded, "slow", "checkout")
    assert search(store, service="orders", parent_service="gateway") == named(seeded, "checkout")
    assert search(store, service="gateway", parent_service="payments") == []
    assert search(store, service="reports", parent_service="gateway") == []  # render starts after the window


def test_the_calls_of_an_edge_to_a_database_queue_or_peer(store: ClickHouseStore) -> None:
    batch = SpanBatch()
    shop = add_trace(batch, NOW, [
        S("api", "GET /", 0, 50, None),
        S("api", "SELECT", 5, 5, 0, {"db.system": "postgresql", "db.name": "shop"}, kind="Client"),
        S("api", "publish", 12, 2, 0, {"messaging.system": "kafka", "messaging.destination.name": "orders"},
          kind="Producer"),
        S("api", "POST /ledger", 20, 9, 0, {"peer.service": "ledger", "server.address": "10.0.0.9"}, kind="Client"),
        S("worker", "consume", 30, 4, 2, {"messaging.system": "kafka", "messaging.destination.name": "orders"},
          kind="Consumer"),
    ])  # fmt: skip
    add_trace(batch, NOW, [S("api", "GET /x", 0, 5, None, {"db.system": "postgresql"}, kind="Server")])
    store.write(batch)
    assert search(store, service="api", peer="shop") == [shop]  # the database's name wins over its system
    assert search(store, service="api", peer="postgresql") == []  # and a server span calls nothing
    assert search(store, service="api", peer="orders") == [shop]
    assert search(store, service="api", peer="ledger") == [shop]
    assert search(store, service="worker", peer="orders") == [shop]  # a queue's consumer reads it


def test_attribute_search_on_merged_parts_with_map_buckets(store: ClickHouseStore) -> None:
    """Merged parts store maps in buckets of keys (migration 0012); every operator reads them right."""
    batch = SpanBatch()
    ids = []
    for i in range(300):
        attrs = {f"k{j}": f"v{(i + j) % 7}" for j in range(8)}
        if i % 3 == 0:
            attrs["rare"] = "" if i % 2 else f"r{i}"
        ids.append(add_trace(batch, NOW - (300 - i) * 1000 * MS, [S(f"svc{i % 4}", "op", 0, 1, None, attrs)]))
    store.write(batch)
    store.client().command("OPTIMIZE TABLE otel_traces FINAL")
    substreams = (
        store.client()
        .query(
            "SELECT substreams FROM system.parts_columns WHERE database = currentDatabase() AND active "
            "AND table = 'otel_traces' AND column = 'SpanAttributes'"
        )
        .result_rows
    )
    assert len(substreams) == 1, "one merged part"
    buckets = {name.split(".")[1] for name in substreams[0][0] if re.match(r"SpanAttributes\.\d+%2Ekeys$", name)}
    assert len(buckets) > 1, substreams

    def found(*filters: AttributeFilter) -> set[str]:
        return set(search(store, attributes=filters, limit=1000))

    expect = {ids[i] for i in range(300) if (i + 2) % 7 == 3}
    assert found(AttributeFilter("k2", "=", "v3")) == expect
    assert found(AttributeFilter("k2", "!=", "v3")) == set(ids) - expect
    assert found(AttributeFilter("k5", "=~", "^v[01]$")) == {ids[i] for i in range(300) if (i + 5) % 7 in (0, 1)}
    assert found(AttributeFilter("rare", "exists")) == {ids[i] for i in range(0, 300, 3)}
    assert found(AttributeFilter("rare", "=", "")) == {ids[i] for i in range(3, 300, 6)}
    assert found(AttributeFilter("rare", "=", "r6")) == {ids[6]}
    assert found(AttributeFilter("rare", "absent"), AttributeFilter("k0", "=", "v1")) == {
        ids[i] for i in range(300) if i % 3 and i % 7 == 1
    }
