"""The ingest benchmark's load renews every trace and span id at each send (benchmarks/dataset.py):
a replayed request would fold into the per-trace tables and compress like no real stream."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

# benchmarks/ is not a package the test run can import by name (the repository root is not on sys.path)
_spec = importlib.util.spec_from_file_location("bench_dataset", Path(__file__).parents[2] / "benchmarks" / "dataset.py")
assert _spec is not None
assert _spec.loader is not None
dataset = sys.modules["bench_dataset"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dataset)
SPANS_PER_TRACE, requests = dataset.SPANS_PER_TRACE, dataset.requests


def _spans(body: bytes) -> list[Span]:
    request = ExportTraceServiceRequest.FromString(body)
    return [span for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]


def test_a_renewed_request_is_the_same_spans_with_new_ids() -> None:
    (request,) = requests(1, 20)
    first, second = request.renewed(), request.renewed()
    original, renewed = _spans(request.body), _spans(first)
    assert len(renewed) == 20 * SPANS_PER_TRACE
    new_span_id = {old.span_id: new.span_id for old, new in zip(original, renewed, strict=True)}
    new_trace_id: dict[bytes, set[bytes]] = {}
    for old, new in zip(original, renewed, strict=True):
        new_trace_id.setdefault(old.trace_id, set()).add(new.trace_id)
        assert new.span_id != old.span_id
        assert new.parent_span_id == (new_span_id[old.parent_span_id] if old.parent_span_id else b"")
        old.trace_id, old.span_id, old.parent_span_id = new.trace_id, new.span_id, new.parent_span_id
        assert old == new  # nothing else changed
    # one new id per trace, a different one for each trace, none of them the old
    assert all(len(ids) == 1 for ids in new_trace_id.values())
    renewed_ids = {next(iter(ids)) for ids in new_trace_id.values()}
    assert len(renewed_ids) == 20
    assert not renewed_ids & set(new_trace_id)
    # and the next send is new traces again
    assert {span.trace_id for span in _spans(second)}.isdisjoint(renewed_ids)
