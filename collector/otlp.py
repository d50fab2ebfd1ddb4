"""OTLP trace decoding: protobuf or JSON `ExportTraceServiceRequest` bytes -> `SpanBatch`.

Invalid spans are rejected one by one and counted (for `partial_success`); the valid
spans beside them are kept. A body that is not the message at all is a `MalformedPayload`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from tracehouse.collector.errors import MalformedPayload
from tracehouse.storage import Attributes, SpanBatch

#: OTLP enum value -> the string the OTel Collector's ClickHouse exporter writes.
SPAN_KINDS = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
STATUS_CODES = ("Unset", "Ok", "Error")
_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)


@dataclass(slots=True)
class Decoded:
    """The accepted spans, and how many were rejected and why (first reasons only)."""

    batch: SpanBatch
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)

    def reject(self, reason: str) -> None:
        self.rejected += 1
        if len(self.reasons) < 5 and reason not in self.reasons:
            self.reasons.append(reason)

    def response(self) -> ExportTraceServiceResponse:
        """The OTLP answer: empty, or `partial_success` with the rejected count and reasons."""
        response = ExportTraceServiceResponse()
        if self.rejected:
            response.partial_success.rejected_spans = self.rejected
            response.partial_success.error_message = "; ".join(self.reasons)
        return response


def decode_protobuf(body: bytes) -> Decoded:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise MalformedPayload(f"body is not a protobuf ExportTraceServiceRequest: {exc}") from None
    return decode_request(request)


def decode_json(body: bytes) -> Decoded:
    """OTLP/JSON: lowerCamelCase names, hex ids, enums as ints, int64 as strings."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise MalformedPayload(f"body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise MalformedPayload("body must be a JSON object with a resourceSpans list")
    for span in _json_spans(document):
        _hex_ids_to_base64(span, ("traceId", "spanId", "parentSpanId"))
        for link in _as_list(span.get("links")):
            _hex_ids_to_base64(link, ("traceId", "spanId"))
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError, TypeError, ValueError) as exc:
        raise MalformedPayload(f"body is not an OTLP/JSON ExportTraceServiceRequest: {exc}") from None
    return decode_request(request)


def decode_request(request: ExportTraceServiceRequest) -> Decoded:
    decoded = Decoded(SpanBatch())
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        service = resource.get("service.name", "unknown_service")
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            for span in scope_spans.spans:
                problem = _invalid(span)
                if problem:
                    decoded.reject(problem)
                    continue
                _append(decoded.batch, span, service, resource, scope.name, scope.version)
    return decoded


def _invalid(span: PbSpan) -> str | None:
    if len(span.trace_id) != 16 or span.trace_id == _ZERO_TRACE:
        return f"span {span.name!r}: trace_id must be 16 bytes, not all zero"
    if len(span.span_id) != 8 or span.span_id == _ZERO_SPAN:
        return f"span {span.name!r}: span_id must be 8 bytes, not all zero"
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return f"span {span.name!r}: parent_span_id must be empty or 8 bytes"
    return None


def _append(batch: SpanBatch, span: PbSpan, service: str, resource: Attributes, scope: str, version: str) -> None:
    batch.timestamp_ns.append(span.start_time_unix_nano)
    batch.trace_id.append(span.trace_id.hex())
    batch.span_id.append(span.span_id.hex())
    batch.parent_span_id.append(span.parent_span_id.hex())
    batch.trace_state.append(span.trace_state)
    batch.span_name.append(span.name)
    batch.span_kind.append(SPAN_KINDS[span.kind] if 0 <= span.kind < len(SPAN_KINDS) else "Unspecified")
    batch.service_name.append(service)
    batch.resource_attributes.append(resource)
    batch.scope_name.append(scope)
    batch.scope_version.append(version)
    batch.span_attributes.append(attributes(span.attributes))
    # An end before the start is clamped to a zero duration rather than rejected.
    batch.duration_ns.append(max(0, span.end_time_unix_nano - span.start_time_unix_nano))
    code = span.status.code
    batch.status_code.append(STATUS_CODES[code] if 0 <= code < len(STATUS_CODES) else "Unset")
    batch.status_message.append(span.status.message)
    batch.event_timestamp_ns.append([e.time_unix_nano for e in span.events])
    batch.event_name.append([e.name for e in span.events])
    batch.event_attributes.append([attributes(e.attributes) for e in span.events])
    batch.link_trace_id.append([link.trace_id.hex() for link in span.links])
    batch.link_span_id.append([link.span_id.hex() for link in span.links])
    batch.link_trace_state.append([link.trace_state for link in span.links])
    batch.link_attributes.append([attributes(link.attributes) for link in span.links])


def attributes(pairs: Iterable[KeyValue]) -> Attributes:
    """OTLP key/values -> string map (the `otel_traces` Map(String, String) columns)."""
    return {kv.key: stringify(kv.value) for kv in pairs}


def stringify(value: AnyValue) -> str:
    """An AnyValue as the exporter stores it: scalars as text, arrays and maps as JSON."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "int_value":
        return str(value.int_value)
    if kind == "double_value":
        return repr(value.double_value)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    if kind is None:
        return ""
    return json.dumps(_plain(value), separators=(",", ":"))


def _plain(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_plain(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _plain(kv.value) for kv in value.kvlist_value.values}
    if kind in ("int_value", "double_value", "bool_value"):
        return getattr(value, kind)
    return stringify(value)


def _json_spans(document: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for resource_spans in _as_list(document.get("resourceSpans")):
        for scope_spans in _as_list(_get(resource_spans, "scopeSpans")):
            yield from _as_list(_get(scope_spans, "spans"))


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None


def _as_list(value: Any) -> list[Any]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _hex_ids_to_base64(obj: dict[str, Any], keys: tuple[str, ...]) -> None:
    """OTLP/JSON ids are hex; the protobuf JSON mapping wants base64. A malformed id
    becomes a wrong-length id, so the span is rejected on its own, not the request."""
    for key in keys:
        text = obj.get(key)
        if isinstance(text, str) and text:
            try:
                raw = bytes.fromhex(text)
            except ValueError:
                raw = b"\xff"
            obj[key] = base64.b64encode(raw).decode("ascii")
