"""The ClickHouse store on the real embedded engine: every column round-trips, writes are
idempotent per batch token, and trace-by-id reads one granule of the trace-id projection."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.spans import full_batch
from tracehouse.storage import ClickHouseStore, Event, Link, Span, SpanBatch, sql

pytestmark = pytest.mark.integration


def expected_spans(batch: SpanBatch) -> list[Span]:
    """The spans of `batch` as the reader should return them, built column by column."""
    spans = []
    for i in range(len(batch)):
        events = tuple(
            Event(t, n, a)
            for t, n, a in zip(batch.event_timestamp_ns[i], batch.event_name[i], batch.event_attributes[i], strict=True)
        )
        links = tuple(
            Link(t, s, st, a)
            for t, s, st, a in zip(
                batch.link_trace_id[i],
                batch.link_span_id[i],
                batch.link_trace_state[i],
                batch.link_attributes[i],
                strict=True,
            )
        )
        spans.append(
            Span(
                batch.timestamp_ns[i],
                batch.trace_id[i],
                batch.span_id[i],
                batch.parent_span_id[i],
                batch.trace_state[i],
                batch.span_name[i],
                batch.span_kind[i],
                batch.service_name[i],
                batch.resource_attributes[i],
                batch.scope_name[i],
                batch.scope_version[i],
                batch.span_attributes[i],
                batch.duration_ns[i],
                batch.status_code[i],
                batch.status_message[i],
                events,
                links,
            )
        )
    return sorted(spans, key=lambda s: (s.timestamp_ns, s.span_id))


def count(store: ClickHouseStore, trace_id: str) -> int:
    return int(
        store.client().command("SELECT count() FROM otel_traces WHERE TraceId = {t:String}", parameters={"t": trace_id})
    )


def test_every_column_round_trips(store: ClickHouseStore) -> None:
    batch = full_batch(spans=4)
    other = full_batch(spans=2)
    store.write(SpanBatch.concat([batch, other]))
    assert store.get_trace(batch.trace_id[0]) == expected_spans(batch)
    assert store.get_trace(other.trace_id[0]) == expected_spans(other)


def test_unknown_trace_is_empty(store: ClickHouseStore) -> None:
    store.write(full_batch())
    assert store.get_trace(os.urandom(16).hex()) == []


def test_writing_the_same_batch_twice_stores_it_once(store: ClickHouseStore) -> None:
    batch = full_batch(spans=5)
    store.write(batch)
    store.write(batch)
    assert count(store, batch.trace_id[0]) == 5
    retry = SpanBatch.concat([batch])  # same spans, new token: a different batch
    store.write(retry)
    assert count(store, batch.trace_id[0]) == 10


def test_the_trace_id_lookup_table_is_kept_for_the_exporters_readers(store: ClickHouseStore) -> None:
    """Grafana's ClickHouse data source bounds its trace-by-id read with otel_traces_trace_id_ts."""
    batch = full_batch(spans=3)
    trace_id = batch.trace_id[0]
    store.write(batch)
    lookup = (
        store.client()
        .query(
            "SELECT toUnixTimestamp64Nano(min(Start)), toUnixTimestamp64Nano(max(End)) "
            "FROM otel_traces_trace_id_ts WHERE TraceId = {t:String}",
            parameters={"t": trace_id},
        )
        .result_rows
    )
    first = min(batch.timestamp_ns)
    assert lookup == [(first, max(t + d for t, d in zip(batch.timestamp_ns, batch.duration_ns, strict=True)))]


def test_trace_by_id_reads_one_granule_of_the_trace_id_projection(store: ClickHouseStore) -> None:
    # 10,000 traces of 3 spans in 7 services: several granules of 8,192 rows in the main table.
    # The trace asked for has a span in three services, so three granules there (the main
    # table is ordered by service first); the projection has it in one granule of 1,024 rows.
    trace_id = os.urandom(16).hex()
    trace = [full_batch(trace_id, spans=1, service=f"svc{i}") for i in (0, 3, 6)]
    others = [full_batch(spans=3, service=f"svc{i % 7}") for i in range(10_000)]
    store.write(SpanBatch.concat(others[:5000] + trace + others[5000:]))
    plan = "\n".join(
        row[0]
        for row in store.client()
        .query("EXPLAIN indexes = 1 " + sql.load("trace_spans"), parameters={"trace_id": trace_id, "limit": 100})
        .result_rows
    )
    assert "ReadFromMergeTree (by_trace_id)" in plan, plan
    assert re.search(r"Granules: 1/([2-9]|\d\d+)\n", plan), plan
    # The lookup table is not needed: without it the spans are still found.
    store.client().command("TRUNCATE TABLE otel_traces_trace_id_ts")
    assert store.get_trace(trace_id) == [span for batch in trace for span in expected_spans(batch)]


def test_services_and_operations(store: ClickHouseStore) -> None:
    store.write(SpanBatch.concat([full_batch(service="cart", spans=3), full_batch(service="api", spans=1)]))
    assert store.services() == ["api", "cart"]
    operations = [(op.name, op.span_kind, op.spans) for op in store.operations("cart")]
    assert operations == [("GET /cart", "Server", 1), ("SELECT cart 1", "Client", 1), ("SELECT cart 2", "Client", 1)]
    assert store.operations("nobody") == []


def test_hostile_values_are_data_not_sql(store: ClickHouseStore) -> None:
    hostile = "x'; DROP TABLE otel_traces; --\\"
    batch = full_batch(service=hostile)
    store.write(batch)
    assert store.operations(hostile)[0].name == "GET /cart"
    assert store.operations("' OR 1=1 --") == []
    assert count(store, batch.trace_id[0]) == 3


def test_the_embedded_engine_bounds_its_background_merges(tmp_path: Path) -> None:
    """At most 8 merges at once, and none started while merges hold 40 % of the memory cap
    (`storage.client.embedded_options`). Server settings apply when an engine starts, so this
    runs in a process of its own."""
    program = (
        "import json, sys\n"
        "from tracehouse.storage import StoreConfig, open_store\n"
        "store = open_store(StoreConfig(dsn='chdb://' + sys.argv[1], memory_limit=500 * 2**20))\n"
        'rows = store.client().query("SELECT name, value FROM system.server_settings WHERE name IN "\n'
        "    \"('background_pool_size', 'merges_mutations_memory_usage_soft_limit', 'max_server_memory_usage')\")\n"
        "print(json.dumps(dict(rows.result_rows)))\n"
        "store.close()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program, str(tmp_path / "data")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    settings = json.loads(done.stdout.strip().splitlines()[-1])
    assert settings == {
        "background_pool_size": "4",
        "merges_mutations_memory_usage_soft_limit": str(int(500 * 2**20 * 0.4)),
        "max_server_memory_usage": str(500 * 2**20),
    }


def test_an_otlp_batch_written_again_after_a_restart_is_stored_once(tmp_path: Path) -> None:
    """A batch inserted in the life that created the schema and replayed (same token) after a
    crash is stored once: the view whose query a migration changed (0015) is reloaded at once,
    not only at the next start (it made other deduplication ids in that first life). A fresh
    engine each time, so each life runs in a process of its own."""
    program = (
        "import sys\n"
        "from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest\n"
        "from tracehouse.storage import OtlpPayload, StoreConfig, open_store\n"
        "store = open_store(StoreConfig(dsn='chdb://' + sys.argv[1]))\n"
        "request = ExportTraceServiceRequest()\n"
        "spans = request.resource_spans.add().scope_spans.add().spans\n"
        "now = int(sys.argv[2])  # the same spans in both lives, and recent (the TTL drops old ones)\n"
        "for i in range(1, 6):\n"
        "    spans.add(trace_id=bytes(range(1, 17)), span_id=bytes([i] * 8), name='op', start_time_unix_nano=now)\n"
        "frame = OtlpPayload.frame(request.SerializeToString(), 5)\n"
        "store.write_otlp(OtlpPayload(frame.data, frame.spans, 'the-same-token'))\n"
        "print(store.client().command('SELECT count() FROM otel_traces'))\n"
        "store.close()\n"
    )
    counts, now = [], str(time.time_ns())
    for _ in range(2):
        life = subprocess.run(
            [sys.executable, "-c", program, str(tmp_path / "data"), now], capture_output=True, text=True, timeout=120
        )
        assert life.returncode == 0, life.stderr
        counts.append(int(life.stdout.strip().splitlines()[-1]))
    assert counts == [5, 5]
