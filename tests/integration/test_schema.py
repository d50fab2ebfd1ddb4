"""Migrations on the real embedded ClickHouse: the exact otel_traces column set, the
schema version recorded, and idempotence (applying again changes nothing)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tests.spans import full_batch
from tracehouse.storage import ClickHouseStore, SpanBatch, StoreConfig, StoreUnavailable, open_store
from tracehouse.storage.migrate import apply_migrations, kept_days, migrations, retained_tables

DAY_NS = 86_400 * 10**9

pytestmark = pytest.mark.integration

MAP = "Map(LowCardinality(String), String)"
#: ../shared/reference/otel-traces-schema.md, with Nested columns as ClickHouse flattens them.
OTEL_TRACES_COLUMNS = [
    ("Timestamp", "DateTime64(9)"),
    ("TraceId", "String"),
    ("SpanId", "String"),
    ("ParentSpanId", "String"),
    ("TraceState", "String"),
    ("SpanName", "LowCardinality(String)"),
    ("SpanKind", "LowCardinality(String)"),
    ("ServiceName", "LowCardinality(String)"),
    ("ResourceAttributes", MAP),
    ("ScopeName", "String"),
    ("ScopeVersion", "String"),
    ("SpanAttributes", MAP),
    ("Duration", "UInt64"),
    ("StatusCode", "LowCardinality(String)"),
    ("StatusMessage", "String"),
    ("Events.Timestamp", "Array(DateTime64(9))"),
    ("Events.Name", "Array(LowCardinality(String))"),
    ("Events.Attributes", f"Array({MAP})"),
    ("Links.TraceId", "Array(String)"),
    ("Links.SpanId", "Array(String)"),
    ("Links.TraceState", "Array(String)"),
    ("Links.Attributes", f"Array({MAP})"),
]


def schema_snapshot(store: ClickHouseStore) -> dict[str, Any]:
    client = store.client()
    tables = [row[0] for row in client.query("SHOW TABLES").result_rows]
    return {
        "ddl": {t: client.command("SHOW CREATE TABLE {t:Identifier}", parameters={"t": t}) for t in tables},
        "versions": client.query("SELECT Version, Name FROM tracehouse_schema_migrations ORDER BY Version").result_rows,
    }


def test_span_table_has_exactly_the_otel_traces_columns(store: ClickHouseStore) -> None:
    rows = store.client().query("DESCRIBE TABLE otel_traces").result_rows
    assert [(name, type_) for name, type_, *_ in rows] == OTEL_TRACES_COLUMNS


def test_trace_id_lookup_table_has_the_exporter_columns(store: ClickHouseStore) -> None:
    rows = store.client().query("DESCRIBE TABLE otel_traces_trace_id_ts").result_rows
    assert [name for name, *_ in rows] == ["TraceId", "Start", "End"]


def test_schema_version_is_recorded(store: ClickHouseStore) -> None:
    shipped = migrations(ttl_days=7)
    assert [m.version for m in shipped] == list(range(1, len(shipped) + 1))
    assert store.schema_version() == shipped[-1].version


def test_applying_migrations_twice_changes_nothing(store: ClickHouseStore) -> None:
    before = schema_snapshot(store)
    assert apply_migrations(store.client(), ttl_days=7) == []
    assert schema_snapshot(store) == before
    assert len(before["versions"]) == len(migrations(ttl_days=7))


def test_migrations_rerun_after_a_lost_version_record_are_harmless(store: ClickHouseStore) -> None:
    """Statements themselves are idempotent: a crash after a migration ran but before it
    was recorded re-runs it on the next start without error or change."""
    before = schema_snapshot(store)["ddl"]
    store.client().command("TRUNCATE TABLE tracehouse_schema_migrations")
    rerun = apply_migrations(store.client(), ttl_days=7)
    assert [m.version for m in rerun] == [m.version for m in migrations(ttl_days=7)]
    assert schema_snapshot(store)["ddl"] == before


def test_span_table_merges_twenty_parts_of_a_size_at_a_time(store: ClickHouseStore) -> None:
    """Migration 0016: merge_selector_base 20 (the engine's default 5 rewrote each span ~4 times
    within a minute at ingest; BENCHMARKS.md)."""
    engine = store.client().command(
        "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = 'otel_traces'"
    )
    assert "merge_selector_base = 20" in str(engine)


def test_span_table_writes_inserts_as_compact_parts(store: ClickHouseStore) -> None:
    """Migration 0017: parts under 100k rows are compact (one data file, not one per column:
    an insert fsyncs 62 files instead of 176; BENCHMARKS.md), merged parts past it wide."""
    client = store.client()
    engine = client.command(
        "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = 'otel_traces'"
    )
    assert "min_rows_for_wide_part = 100000" in str(engine)


def ten_days_old_span() -> SpanBatch:
    batch = full_batch(spans=1)
    batch.timestamp_ns[0] -= 10 * DAY_NS
    batch.event_timestamp_ns[0] = [t - 10 * DAY_NS for t in batch.event_timestamp_ns[0]]
    return batch


def spans_kept(store: ClickHouseStore, batch: SpanBatch) -> int:
    """The batch's spans left once the TTL has been applied (a final merge)."""
    store.client().command("OPTIMIZE TABLE otel_traces FINAL")
    found = store.client().command(
        "SELECT count() FROM otel_traces WHERE TraceId = {id:String}", parameters={"id": batch.trace_id[0]}
    )
    return int(str(found))


@pytest.mark.parametrize("store_config", ["embedded"], indirect=True)
def test_a_ttl_days_given_changes_what_the_store_keeps_and_none_given_keeps_it(store_config: StoreConfig) -> None:
    # The TTL was fixed when the tables were made: a later --ttl-days 30 accepted spans 7 to 30 days
    # old (the collector's age check follows it) and the store dropped them (operator review). And a
    # process started without --ttl-days must not shorten a store kept longer (review).
    open_store(store_config).close()  # created keeping 7 days
    longer = open_store(replace(store_config, ttl_days=30, retention_given=True))
    try:
        assert set(kept_days(longer.client()).values()) == {30}
        assert set(kept_days(longer.client())) == set(retained_tables()) - {"tracehouse_traces"}  # dropped by 0014
        old = ten_days_old_span()
        longer.write(old)
        assert spans_kept(longer, old) == 1
    finally:
        longer.close()
    unsaid = open_store(store_config)  # no --ttl-days: the store keeps its 30
    try:
        assert set(kept_days(unsaid.client()).values()) == {30}
        assert spans_kept(unsaid, old) == 1
    finally:
        unsaid.close()
    shorter = open_store(replace(store_config, retention_given=True))  # --ttl-days 7: the span is past it
    try:
        assert set(kept_days(shorter.client()).values()) == {7}
        assert spans_kept(shorter, old) == 0
    finally:
        shorter.client().command("DROP DATABASE IF EXISTS {db:Identifier}", parameters={"db": store_config.database})
        shorter.close()


def test_a_store_that_does_not_answer_is_unavailable_not_an_engine_error(store_config: StoreConfig) -> None:
    # The collector's /healthz read it raw: a 500 while ClickHouse was away, so a balancer dropped every
    # collector just when their spools were to take the spans (operator review).
    opened = open_store(store_config)
    try:
        opened.client().close()
        with pytest.raises(StoreUnavailable, match="reading the schema version failed"):
            opened.schema_version()
    finally:
        opened.close()
