"""Test data: span batches with every column filled, built without the code under test."""

from __future__ import annotations

import os
import time

from tracehouse.storage import SpanBatch


def full_batch(trace_id: str | None = None, spans: int = 3, service: str = "checkout") -> SpanBatch:
    """A trace of `spans` spans (a root and children), every otel_traces column non-empty,
    including events and links with attributes. Timestamps keep nanosecond digits."""
    trace_id = trace_id or os.urandom(16).hex()
    start = time.time_ns() - 5_000_000_123
    ids = [os.urandom(8).hex() for _ in range(spans)]
    batch = SpanBatch()
    for i, span_id in enumerate(ids):
        batch.timestamp_ns.append(start + i * 1_000_007)
        batch.trace_id.append(trace_id)
        batch.span_id.append(span_id)
        batch.parent_span_id.append("" if i == 0 else ids[0])
        batch.trace_state.append("vendor=1")
        batch.span_name.append("GET /cart" if i == 0 else f"SELECT cart {i}")
        batch.span_kind.append("Server" if i == 0 else "Client")
        batch.service_name.append(service)
        batch.resource_attributes.append({"service.name": service, "host.name": "h1", "service.instance.id": "h1:1"})
        batch.scope_name.append("opentelemetry.instrumentation.test")
        batch.scope_version.append("0.1")
        batch.span_attributes.append({"http.method": "GET", "index": str(i), "unicode": "Grüße ✓"})
        batch.duration_ns.append(3_000_000_011 - i)
        batch.status_code.append("Error" if i == spans - 1 else "Ok")
        batch.status_message.append("boom" if i == spans - 1 else "")
        batch.event_timestamp_ns.append([start + i * 1_000_007 + 13, start + i * 1_000_007 + 17])
        batch.event_name.append(["exception", "retry"])
        batch.event_attributes.append([{"exception.type": "ValueError"}, {"attempt": "2"}])
        batch.link_trace_id.append([os.urandom(16).hex()])
        batch.link_span_id.append([os.urandom(8).hex()])
        batch.link_trace_state.append(["k=v"])
        batch.link_attributes.append([{"link.kind": "follows"}])
    return batch
