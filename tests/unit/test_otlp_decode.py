"""OTLP request validation (protobuf and JSON), fed by the real OpenTelemetry SDK and its
OTLP encoder. How spans become `otel_traces` rows is tested on the real store
(tests/integration/test_otlp_ingest.py)."""

from __future__ import annotations

import json

import pytest
from google.protobuf import json_format
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tracehouse.collector import MalformedPayload, decode_json, decode_protobuf
from tracehouse.collector.window import TimeWindow
from tracehouse.storage import OtlpPayload


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


def parse(payload: OtlpPayload) -> ExportTraceServiceRequest:
    """The single framed request inside `payload` (varint length + message)."""
    data = payload.data
    length, shift, offset = 0, 0, 0
    while True:
        byte = data[offset]
        length |= (byte & 0x7F) << shift
        offset += 1
        shift += 7
        if byte < 0x80:
            break
    assert len(data) == offset + length
    return ExportTraceServiceRequest.FromString(data[offset:])


def test_a_valid_request_passes_unchanged() -> None:
    body = encode_spans(sdk_spans()).SerializeToString()
    decoded = decode_protobuf(body)
    assert decoded.rejected == 0
    assert decoded.payload.spans == 2
    assert parse(decoded.payload).SerializeToString() == body
    assert decoded.response() == ExportTraceServiceResponse()


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
    assert decoded.payload.spans == 2
    assert decoded.rejected == 2
    kept = parse(decoded.payload).resource_spans[0].scope_spans[0].spans
    assert [len(s.trace_id) for s in kept] == [16, 16]
    assert all(s.span_id != bytes(8) and len(s.span_id) == 8 for s in kept)
    response = decoded.response()
    assert response.partial_success.rejected_spans == 2
    assert "trace_id must be 16 bytes" in response.partial_success.error_message
    assert "span_id must be 8 bytes" in response.partial_success.error_message


def test_a_request_without_valid_spans_has_an_empty_payload() -> None:
    request = encode_spans(sdk_spans())
    for span in request.resource_spans[0].scope_spans[0].spans:
        span.trace_id = b"short"
    decoded = decode_protobuf(request.SerializeToString())
    assert (decoded.payload.spans, decoded.payload.data, decoded.rejected) == (0, b"", 2)


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
    from_json = decode_json(otlp_json(request)).payload
    assert from_json.spans == 2
    assert parse(from_json) == request


def test_json_with_a_bad_hex_id_rejects_that_span_only() -> None:
    document = json.loads(otlp_json(encode_spans(sdk_spans())))
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["spanId"] = "not-hex"
    decoded = decode_json(json.dumps(document).encode())
    assert (decoded.payload.spans, decoded.rejected) == (1, 1)


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


def test_spans_outside_the_time_window_are_rejected() -> None:
    """Older than retention would vanish at insert (TTL) after a 200; far future is a broken clock."""
    request = encode_spans(sdk_spans())
    old, future = request.resource_spans[0].scope_spans[0].spans
    old.start_time_unix_nano -= 3 * 86400 * 10**9
    future.start_time_unix_nano += 2 * 86400 * 10**9
    decoded = decode_protobuf(request.SerializeToString(), TimeWindow(max_age=2 * 86400, max_ahead=86400))
    assert (decoded.payload.spans, decoded.rejected) == (0, 2)
    message = decoded.response().partial_success.error_message
    assert "starts more than 2 days ago (outside retention)" in message
    assert "starts more than 24 hours in the future" in message
    assert decode_protobuf(request.SerializeToString(), TimeWindow(5 * 86400, 3 * 86400)).rejected == 0


def test_spans_ending_far_ahead_are_rejected() -> None:
    """An end (or event) past the window would overflow DateTime64 arithmetic in the store."""
    request = encode_spans(sdk_spans())
    ends_late, event_late = request.resource_spans[0].scope_spans[0].spans
    ends_late.end_time_unix_nano = 2**64 - 1
    event_late.events.add(time_unix_nano=10_000_000_000 * 10**9, name="year 2286")
    decoded = decode_protobuf(request.SerializeToString())
    assert (decoded.payload.spans, decoded.rejected) == (0, 2)
    assert "ends or has an event more than 24 hours ahead" in decoded.response().partial_success.error_message


def test_json_with_invalid_utf8_keeps_its_spans_with_the_bytes_replaced() -> None:
    request = encode_spans(sdk_spans())
    request.resource_spans[0].scope_spans[0].spans[0].name = "GET /cart-MARK"
    body = otlp_json(request).replace(b"-MARK", b"-\xff\xfe")
    decoded = decode_json(body)
    assert (decoded.payload.spans, decoded.rejected) == (2, 0)
    assert parse(decoded.payload).resource_spans[0].scope_spans[0].spans[0].name == "GET /cart-\ufffd\ufffd"


def test_json_in_the_protos_own_field_names_decodes_like_protobuf() -> None:
    """The protobuf JSON mapping lets a parser take `trace_id` for `traceId`; ids stay hex."""
    request = encode_spans(sdk_spans())
    document = json.loads(otlp_json(request))
    renames = {
        "resourceSpans": "resource_spans", "scopeSpans": "scope_spans", "traceId": "trace_id", "spanId": "span_id",
        "parentSpanId": "parent_span_id", "startTimeUnixNano": "start_time_unix_nano",
    }  # fmt: skip

    def snake(node: object) -> object:
        if isinstance(node, dict):
            return {renames.get(key, key): snake(value) for key, value in node.items()}
        return [snake(value) for value in node] if isinstance(node, list) else node

    decoded = decode_json(json.dumps(snake(document)).encode())
    assert (decoded.payload.spans, decoded.rejected) == (2, 0)
    assert parse(decoded.payload) == request


def test_json_in_the_names_before_scopes_decodes_like_protobuf() -> None:
    """`instrumentationLibrarySpans` (OTLP before opentelemetry-proto 0.15) is not dropped unread."""
    request = encode_spans(sdk_spans())
    document = json.loads(otlp_json(request))
    for resource_spans in document["resourceSpans"]:
        resource_spans["instrumentationLibrarySpans"] = [
            {**{k: v for k, v in scope.items() if k != "scope"}, "instrumentationLibrary": scope["scope"]}
            for scope in resource_spans.pop("scopeSpans")
        ]
    decoded = decode_json(json.dumps(document).encode())
    assert (decoded.payload.spans, decoded.rejected) == (2, 0)
    assert parse(decoded.payload) == request
    # both names in one resource: every span is kept
    both = json.loads(otlp_json(request))
    legacy = document["resourceSpans"][0]["instrumentationLibrarySpans"]
    both["resourceSpans"][0]["instrumentationLibrarySpans"] = legacy
    assert decode_json(json.dumps(both).encode()).payload.spans == 4


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_an_all_zero_parent_id_makes_a_root(encoding: str) -> None:
    request = encode_spans(sdk_spans())
    assert request.resource_spans[0].scope_spans[0].spans[0].parent_span_id  # the child
    request.resource_spans[0].scope_spans[0].spans[0].parent_span_id = bytes(8)
    body = request.SerializeToString() if encoding == "protobuf" else otlp_json(request)
    decoded = (decode_protobuf if encoding == "protobuf" else decode_json)(body)
    assert (decoded.payload.spans, decoded.rejected) == (2, 0)
    assert parse(decoded.payload).resource_spans[0].scope_spans[0].spans[0].parent_span_id == b""


@pytest.mark.parametrize(("trace_id", "span_id"), [(b"\x01" * 15, b"\x01" * 8), (b"\x01" * 16, b"\x01\x02")])
def test_a_span_with_a_malformed_link_is_rejected_alone(trace_id: bytes, span_id: bytes) -> None:
    request = encode_spans(sdk_spans())
    (child,) = [span for span in request.resource_spans[0].scope_spans[0].spans if span.links]
    child.links[0].trace_id, child.links[0].span_id = trace_id, span_id
    decoded = decode_protobuf(request.SerializeToString())
    assert (decoded.payload.spans, decoded.rejected) == (1, 1)
    assert (
        "link 0 must have a 16-byte trace_id and an 8-byte span_id" in decoded.response().partial_success.error_message
    )


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_a_resource_the_store_will_cut_is_marked_first_with_its_service_name(encoding: str) -> None:
    request = encode_spans(sdk_spans())
    attributes = request.resource_spans[0].resource.attributes
    attributes.extend(KeyValue(key=f"r{i}", value=AnyValue(string_value="v")) for i in range(1100))
    attributes.append(attributes.pop(next(i for i, kv in enumerate(attributes) if kv.key == "service.name")))
    body = request.SerializeToString() if encoding == "protobuf" else otlp_json(request)
    decoded = (decode_protobuf if encoding == "protobuf" else decode_json)(body)
    kept = parse(decoded.payload).resource_spans[0].resource.attributes
    assert [kv.key for kv in kept[:2]] == ["tracehouse.truncated", "service.name"]
    assert len(kept) == len(attributes) + 1
