"""OTLP decoding into columns, fed by the real OpenTelemetry SDK and its OTLP encoder."""

from __future__ import annotations

import json

import pytest
from google.protobuf import json_format
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tracehouse.collector import MalformedPayload, decode_json, decode_protobuf


def sdk_spans() -> list[ReadableSpan]:
    """Spans made by the real SDK: a server root with typed attributes and an event, a
    client child with an error status and a link."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "shop", "deployment.environment": "test"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("shop.instrumentation", "2.0")
    attrs = {"http.method": "GET", "retries": 3, "ratio": 0.5, "cached": True, "tags": ["a", "b"]}
    with tracer.start_as_current_span("GET /cart", kind=trace.SpanKind.SERVER, attributes=attrs) as root:
        root.add_event("cache miss", {"key": "cart:1"})
        link = trace.Link(root.get_span_context(), {"why": "follows"})
        with tracer.start_as_current_span("SELECT", kind=trace.SpanKind.CLIENT, links=[link]) as child:
            child.set_status(trace.Status(trace.StatusCode.ERROR, "timeout"))
    provider.shutdown()
    return list(exporter.get_finished_spans())


def test_sdk_spans_become_columns() -> None:
    spans = sdk_spans()
    decoded = decode_protobuf(encode_spans(spans).SerializeToString())
    batch = decoded.batch
    assert decoded.rejected == 0
    assert len(batch) == 2
    child, root = (0, 1) if batch.span_name[0] == "SELECT" else (1, 0)
    sdk_root = next(s for s in spans if s.name == "GET /cart")
    assert batch.trace_id[root] == format(sdk_root.context.trace_id, "032x")
    assert batch.span_id[root] == format(sdk_root.context.span_id, "016x")
    assert batch.parent_span_id[root] == ""
    assert batch.parent_span_id[child] == batch.span_id[root]
    assert batch.timestamp_ns[root] == sdk_root.start_time
    assert batch.duration_ns[root] == sdk_root.end_time - sdk_root.start_time
    assert (batch.span_kind[root], batch.span_kind[child]) == ("Server", "Client")
    assert (batch.status_code[root], batch.status_code[child]) == ("Unset", "Error")
    assert batch.status_message[child] == "timeout"
    assert batch.service_name[root] == "shop"
    assert batch.resource_attributes[root]["deployment.environment"] == "test"
    assert (batch.scope_name[root], batch.scope_version[root]) == ("shop.instrumentation", "2.0")
    assert batch.span_attributes[root] == {
        "http.method": "GET",
        "retries": "3",
        "ratio": "0.5",
        "cached": "true",
        "tags": '["a","b"]',
    }
    assert batch.event_name[root] == ["cache miss"]
    assert batch.event_attributes[root] == [{"key": "cart:1"}]
    assert batch.link_span_id[child] == [batch.span_id[root]]
    assert batch.link_attributes[child] == [{"why": "follows"}]


def test_invalid_spans_are_rejected_alone() -> None:
    request = encode_spans(sdk_spans())
    spans = request.resource_spans[0].scope_spans[0].spans
    bad = spans.add()
    bad.CopyFrom(spans[0])
    bad.trace_id = bytes(16)
    short = spans.add()
    short.CopyFrom(spans[0])
    short.span_id = b"\x01\x02"
    decoded = decode_protobuf(request.SerializeToString())
    assert len(decoded.batch) == 2
    assert decoded.rejected == 2
    response = decoded.response()
    assert response.partial_success.rejected_spans == 2
    assert "trace_id must be 16 bytes" in response.partial_success.error_message
    assert "span_id must be 8 bytes" in response.partial_success.error_message


def test_end_before_start_is_clamped_to_zero_duration() -> None:
    request = encode_spans(sdk_spans())
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.end_time_unix_nano = span.start_time_unix_nano - 10
    assert decode_protobuf(request.SerializeToString()).batch.duration_ns[0] == 0


@pytest.mark.parametrize("body", [b"\xff\xff\xff", b"\x0a\x05abc"])
def test_garbage_protobuf_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedPayload, match="not a protobuf ExportTraceServiceRequest"):
        decode_protobuf(body)


def otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """OTLP/JSON as the spec writes it: hex ids (the protobuf JSON mapping would give base64)."""
    document = json_format.MessageToDict(request)
    for resource_spans in document["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for obj in [span, *span.get("links", [])]:
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in obj:
                            obj[key] = _b64_to_hex(obj[key])
    return json.dumps(document).encode()


def _b64_to_hex(text: str) -> str:
    import base64

    return base64.b64decode(text).hex()


def test_json_decodes_like_protobuf() -> None:
    request = encode_spans(sdk_spans())
    from_json = decode_json(otlp_json(request)).batch
    from_proto = decode_protobuf(request.SerializeToString()).batch
    assert from_json.columns() == from_proto.columns()


def test_json_with_a_bad_hex_id_rejects_that_span_only() -> None:
    document = json.loads(otlp_json(encode_spans(sdk_spans())))
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["spanId"] = "not-hex"
    decoded = decode_json(json.dumps(document).encode())
    assert (len(decoded.batch), decoded.rejected) == (1, 1)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}', "not an OTLP/JSON"),
        (b'{"resourceSpans": "nope"}', "not an OTLP/JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
    ],
)
def test_bad_json_is_malformed(body: bytes, message: str) -> None:
    with pytest.raises(MalformedPayload, match=message):
        decode_json(body)
