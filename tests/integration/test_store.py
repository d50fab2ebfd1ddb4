"""The ClickHouse store on the real embedded engine: every column round-trips, writes are
idempotent per batch token, and trace-by-id reads through the trace-id lookup table."""

from __future__ import annotations

import os

import pytest

from tests.spans import full_batch
from tracehouse.storage import ClickHouseStore, Event, Link, Span, SpanBatch

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


def test_trace_by_id_reads_through_the_lookup_table(store: ClickHouseStore) -> None:
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

    # The reader trusts the lookup range: narrowed to the first span, only that span is read ...
    store.client().command("TRUNCATE TABLE otel_traces_trace_id_ts")
    store.client().insert(
        "otel_traces_trace_id_ts", [[trace_id, first, first]], column_names=["TraceId", "Start", "End"]
    )
    assert [s.timestamp_ns for s in store.get_trace(trace_id)] == [first]
    # ... and with no lookup row the trace is not found, although its spans are stored.
    store.client().command("TRUNCATE TABLE otel_traces_trace_id_ts")
    assert count(store, trace_id) == 3
    assert store.get_trace(trace_id) == []


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
