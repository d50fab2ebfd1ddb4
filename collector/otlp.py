"""OTLP trace requests (protobuf or JSON) -> a validated `OtlpPayload`.

The spans themselves are decoded and flattened inside ClickHouse (Protobuf input format and
a materialized view, see storage migration 0004); here each request is parsed once (upb,
lazy) to check ids and count spans. Invalid spans are removed one by one and counted for
`partial_success`; a body that is not the message at all is a `MalformedPayload`.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tracehouse.collector.caps import mark_if_cut, may_be_cut
from tracehouse.collector.errors import MalformedPayload
from tracehouse.collector.lenient import LenientExportTraceServiceRequest
from tracehouse.collector.window import DEFAULT_WINDOW, TimeWindow
from tracehouse.storage import OtlpPayload

_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)


@dataclass(slots=True)
class OtlpDecoded:
    """The accepted spans, and how many were rejected and why (first reasons only)."""

    payload: OtlpPayload
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)
    outside_window: int = 0  # of the rejected: starting or ending outside the time window

    def response(self) -> ExportTraceServiceResponse:
        """The OTLP answer: empty, or `partial_success` with the rejected count and reasons."""
        response = ExportTraceServiceResponse()
        if self.rejected:
            response.partial_success.rejected_spans = self.rejected
            response.partial_success.error_message = "; ".join(self.reasons)
        return response


def decode_protobuf(body: bytes, window: TimeWindow = DEFAULT_WINDOW) -> OtlpDecoded:
    """Parse leniently (text as bytes): invalid UTF-8 is repaired by the store, not refused."""
    request = LenientExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise MalformedPayload(f"body is not a protobuf ExportTraceServiceRequest: {exc}") from None
    return validate(request, window, body)


def decode_json(body: bytes, window: TimeWindow = DEFAULT_WINDOW) -> OtlpDecoded:
    """OTLP/JSON: lowerCamelCase names (the proto's own snake_case names too, as the protobuf JSON
    mapping allows), hex ids, enums as ints or names, int64 as strings or numbers. Invalid UTF-8
    is replaced (U+FFFD), as in protobuf bodies: one bad string costs no spans."""
    try:
        document = json.loads(body)
    except UnicodeDecodeError:
        document = _loads(body.decode(json.detect_encoding(body), "replace"))
    except (ValueError, RecursionError) as exc:
        raise MalformedPayload(f"body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise MalformedPayload("body must be a JSON object with a resourceSpans list")
    for span in _json_spans(document):
        _hex_ids_to_base64(span, _SPAN_IDS)
        for link in _as_list(span.get("links")):
            _hex_ids_to_base64(link, _LINK_IDS)
    try:
        request = _parse_dict(document)
    except MalformedPayload:
        # JSON's own invalid UTF-8: a lone surrogate escape (\ud800) that protobuf refuses.
        # Replaced like invalid UTF-8 in protobuf bodies, so one bad string costs no spans.
        try:
            repaired = _repaired(document)
            unchanged = repaired == document
        except RecursionError:
            unchanged = True
        if unchanged:
            raise
        request = _parse_dict(repaired)
    return validate(request, window)


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise MalformedPayload(f"body is not valid JSON: {exc}") from None


def _parse_dict(document: dict[str, Any]) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError, TypeError, ValueError) as exc:
        raise MalformedPayload(f"body is not an OTLP/JSON ExportTraceServiceRequest: {exc}") from None
    return request


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # json.loads pairs the valid ones


def _repaired(node: Any) -> Any:
    """`node` with every lone surrogate (in strings and keys) replaced by U+FFFD."""
    if isinstance(node, str):
        return _LONE_SURROGATE.sub("\ufffd", node)
    if isinstance(node, list):
        return [_repaired(value) for value in node]
    if isinstance(node, dict):
        return {_repaired(key): _repaired(value) for key, value in node.items()}
    return node


def validate(request: Any, window: TimeWindow, body: bytes | None = None) -> OtlpDecoded:
    """Drop spans with invalid ids or times outside `window` (counted). The payload is `body`
    (the request's own encoding) when nothing was dropped, else the request re-encoded.

    A field with the wrong wire type survives parsing as an unknown field and makes
    ClickHouse refuse the insert; the pipeline then stores that request alone, `repaired`.
    Discarding unknown fields here, for every request, would cost a third of the throughput.
    """
    rejected: list[str] = []
    spans = 0
    check = _Check(window)
    for resource_spans in request.resource_spans:
        if mark_if_cut(resource_spans.resource.attributes, first="service.name"):
            check.changed = True
        for scope_spans in resource_spans.scope_spans:
            spans += check.drop_invalid(scope_spans.spans, rejected)
    if rejected or body is None or check.changed:
        body = request.SerializeToString()
    decoded = OtlpDecoded(OtlpPayload.frame(body, spans), len(rejected), outside_window=check.outside_window)
    decoded.reasons = list(dict.fromkeys(rejected))[:5]
    return decoded


def split_requests(payload: OtlpPayload) -> list[OtlpPayload]:
    """The requests of a (merged) payload, each its own payload with the token
    `<payload token>.<index>`; bytes that are no message make a piece the store refuses."""
    pieces: list[OtlpPayload] = []
    for index, (frame, message) in enumerate(payload.frames()):
        spans = 1  # not a message: stored alone, refused, set aside
        if message is not None:
            request = LenientExportTraceServiceRequest()
            with contextlib.suppress(DecodeError):
                request.ParseFromString(message)
                spans = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        pieces.append(OtlpPayload(frame, spans, f"{payload.token}.{index}"))
    return pieces


def repaired(payload: object) -> OtlpPayload | None:
    """A one-request payload the store refused, without the fields the parser did not know
    (a known field sent with another wire type is one, for protobuf parsers); None when
    there is no such field to drop."""
    if not isinstance(payload, OtlpPayload):
        return None
    frames = payload.frames()
    if len(frames) != 1 or frames[0][1] is None:
        return None
    request = LenientExportTraceServiceRequest()
    try:
        request.ParseFromString(frames[0][1])
    except DecodeError:
        return None
    before = request.ByteSize()
    request.DiscardUnknownFields()
    if request.ByteSize() == before:
        return None
    return dataclasses.replace(OtlpPayload.frame(request.SerializeToString(), payload.spans), token=payload.token)


class _Check:
    def __init__(self, window: TimeWindow) -> None:
        self.window = window
        self.bounds = window.bounds()
        self.changed = False  # the request was mended: an all-zero parent id made empty, a map marked cut
        self.outside_window = 0  # spans refused for their times

    def drop_invalid(self, spans: Any, rejected: list[str]) -> int:
        """Remove the invalid spans of a repeated field, recording why; returns how many stay."""
        problem = self.problem
        invalid = [(i, why) for i, span in enumerate(spans) if (why := problem(span)) is not None]
        for i, why in reversed(invalid):
            rejected.append(why)
            del spans[i]
        return len(spans)

    def problem(self, span: Any) -> str | None:
        """Why `span` (strict or lenient message) is refused, or None. Runs for every span, so each
        field is read once and a valid span makes no further call (decode + check of the ingest
        benchmark's requests: 768k → 825k spans/s)."""
        trace_id, span_id, parent = span.trace_id, span.span_id, span.parent_span_id
        if len(trace_id) != 16 or trace_id == _ZERO_TRACE:
            return f"span {_name(span)!r}: trace_id must be 16 bytes, not all zero"
        if len(span_id) != 8 or span_id == _ZERO_SPAN:
            return f"span {_name(span)!r}: span_id must be 8 bytes, not all zero"
        if parent and (len(parent) != 8 or parent == _ZERO_SPAN):
            if parent != _ZERO_SPAN:
                return f"span {_name(span)!r}: parent_span_id must be empty or 8 bytes"
            span.parent_span_id = b""  # a root, as the OTel Collector reads an all-zero id
            self.changed = True
        earliest, latest = self.bounds
        start = span.start_time_unix_nano
        if not earliest <= start <= latest:
            self.outside_window += 1
            return f"span {_name(span)!r} {self.window.reason(start, self.bounds)}"
        if span.end_time_unix_nano > latest:
            return self._ahead(span)
        events, links = span.events, span.links
        # Each event and link is read once (a wrapper per item costs ~0.6 µs): its time or ids, and
        # whether the store will cut its attributes, which the view does without marking them.
        if events:
            for event in events:
                if event.time_unix_nano > latest:
                    return self._ahead(span)
                if may_be_cut(event) and mark_if_cut(event.attributes):
                    self.changed = True
        if links:
            for i, link in enumerate(links):
                if len(link.trace_id) != 16 or len(link.span_id) != 8:
                    return f"span {_name(span)!r}: link {i} must have a 16-byte trace_id and an 8-byte span_id"
                if may_be_cut(link) and mark_if_cut(link.attributes):
                    self.changed = True
        return None

    def _ahead(self, span: Any) -> str:
        self.outside_window += 1
        return f"span {_name(span)!r} ends or has an event more than {self.window.max_ahead / 3600:g} hours ahead"


def _name(span: Any) -> str:
    name = span.name[:100]
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)


def _json_spans(document: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """Every span of the document. Spans sent in the names OTLP used before opentelemetry-proto
    0.15 (2022: `instrumentationLibrarySpans`, `instrumentationLibrary`) are moved to `scopeSpans`
    and `scope` on the way, not dropped as unknown fields."""
    for resource_spans in _as_list(_get(document, "resourceSpans", "resource_spans")):
        legacy = resource_spans.pop("instrumentationLibrarySpans", None)
        if isinstance(legacy, list):
            moved = [_scope_spans(old) for old in legacy if isinstance(old, dict)]
            current = _get(resource_spans, "scopeSpans", "scope_spans")
            if isinstance(current, list):  # both: the legacy spans join the others
                current.extend(moved)
            elif current is None:
                resource_spans["scopeSpans"] = moved
        for scope_spans in _as_list(_get(resource_spans, "scopeSpans", "scope_spans")):
            yield from _as_list(_get(scope_spans, "spans", "spans"))


def _scope_spans(legacy: dict[str, Any]) -> dict[str, Any]:
    scope_spans = {key: value for key, value in legacy.items() if key != "instrumentationLibrary"}
    if "instrumentationLibrary" in legacy:
        scope_spans["scope"] = legacy["instrumentationLibrary"]
    return scope_spans


def _get(obj: dict[str, Any], name: str, proto_name: str) -> Any:
    """A field by its JSON name, else by its proto name (the protobuf JSON mapping accepts both)."""
    value = obj.get(name)
    return obj.get(proto_name) if value is None else value


#: (JSON name, proto name) of the ids, which OTLP/JSON writes in hex.
_SPAN_IDS = (("traceId", "trace_id"), ("spanId", "span_id"), ("parentSpanId", "parent_span_id"))
_LINK_IDS = _SPAN_IDS[:2]


def _as_list(value: Any) -> list[Any]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _hex_ids_to_base64(obj: dict[str, Any], keys: tuple[tuple[str, str], ...]) -> None:
    """OTLP/JSON ids are hex; the protobuf JSON mapping wants base64. A malformed id
    becomes a wrong-length id, so the span is rejected on its own, not the request."""
    for names in keys:
        for key in names:
            text = obj.get(key)
            if isinstance(text, str) and text:
                try:
                    raw = bytes.fromhex(text)
                except ValueError:
                    raw = b"\xff"
                obj[key] = base64.b64encode(raw).decode("ascii")
