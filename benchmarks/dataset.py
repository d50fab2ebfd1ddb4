"""The Jaeger-comparable data set: traces of 10 spans, 11 string attributes per span,
10 services, 50 operations, as OTLP `ExportTraceServiceRequest` protobuf payloads."""

from __future__ import annotations

import os
import random
import time

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

SERVICES = [f"service-{i}" for i in range(10)]
OPERATIONS = [f"operation-{i}" for i in range(50)]
SPANS_PER_TRACE = 10
ATTRIBUTES = 11


def payload(traces: int, rng: random.Random) -> bytes:
    """One request of `traces` traces (10 spans each), one resource per service."""
    request = ExportTraceServiceRequest()
    by_service = {}
    for service in SERVICES:
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.append(_kv("service.name", service))
        resource_spans.resource.attributes.append(_kv("host.name", f"host-{rng.randrange(20)}"))
        scope = resource_spans.scope_spans.add()
        scope.scope.name = "bench"
        by_service[service] = scope.spans
    now = time.time_ns()
    for _ in range(traces):
        trace_id = os.urandom(16)
        ids = [os.urandom(8) for _ in range(SPANS_PER_TRACE)]
        for i, span_id in enumerate(ids):
            span = by_service[rng.choice(SERVICES)].add()
            span.trace_id = trace_id
            span.span_id = span_id
            if i:
                span.parent_span_id = ids[rng.randrange(i)]
            span.name = rng.choice(OPERATIONS)
            span.kind = Span.SPAN_KIND_SERVER if i == 0 else Span.SPAN_KIND_CLIENT
            span.start_time_unix_nano = now + i * 1000
            span.end_time_unix_nano = span.start_time_unix_nano + rng.randrange(1_000, 50_000_000)
            for a in range(ATTRIBUTES):
                span.attributes.append(_kv(f"attr.key{a}", f"value-{rng.randrange(1000)}"))
    return request.SerializeToString()


def payloads(count: int, traces_per_request: int, seed: int = 42) -> list[bytes]:
    rng = random.Random(seed)
    return [payload(traces_per_request, rng) for _ in range(count)]


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))
