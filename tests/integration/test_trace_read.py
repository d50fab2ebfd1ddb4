"""Trace by id on the real store: a read is capped at `limit` spans, the earliest ones."""

from __future__ import annotations

import pytest

from tests.integration.test_search import MS, NOW, S, add_trace
from tracehouse.query.views import trace_json
from tracehouse.storage import ClickHouseStore, SpanBatch

pytestmark = pytest.mark.integration


def test_a_trace_read_is_capped_at_the_earliest_spans(store: ClickHouseStore) -> None:
    batch = SpanBatch()
    spans = [S("api", "root", 0, 100, None)] + [S("api", f"step {i}", i + 1, 1, 0) for i in range(6)]
    trace_id = add_trace(batch, NOW, spans)
    store.write(batch)
    assert len(store.get_trace(trace_id)) == 7
    cut = store.get_trace(trace_id, limit=4)
    assert [s.name for s in cut] == ["root", "step 0", "step 1", "step 2"]
    body = trace_json(trace_id, cut)
    assert body["spanCount"] == 4
    assert int(body["startTimeUnixNano"]) + body["durationNano"] == NOW + 100 * MS
