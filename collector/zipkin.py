"""Zipkin v2 decoding: a JSON span list or a protobuf `ListOfSpans` -> `SpanBatch`.

Spans with unusable ids or fields are rejected one by one and counted; the others are kept.
Never raises anything but `MalformedPayload` (for a body that is not a span list at all).
"""

from __future__ import annotations

import functools
import ipaddress
import json
import math
from collections.abc import Callable, Iterable
from typing import NamedTuple, TypeVar

from google.protobuf.message import DecodeError

from tracehouse.collector import _zipkin_pb2 as pb
from tracehouse.collector.caps import capped
from tracehouse.collector.decoded import Decoded
from tracehouse.collector.errors import MalformedPayload
from tracehouse.storage import Attributes, SpanBatch

UNKNOWN_SERVICE = "unknown_service"
KINDS = {"CLIENT": "Client", "SERVER": "Server", "PRODUCER": "Producer", "CONSUMER": "Consumer"}
_PROTO_KINDS = (None, "CLIENT", "SERVER", "PRODUCER", "CONSUMER")
_OTEL_STATUS = {"OK": "Ok", "STATUS_CODE_OK": "Ok", "ERROR": "Error", "STATUS_CODE_ERROR": "Error"}
_HEX = frozenset("0123456789abcdef")
#: Latest microsecond whose nanosecond count still fits Int64 / DateTime64(9) (2262-04-11).
_MAX_MICROS = (2**63 - 1) // 1000

_T = TypeVar("_T")

# Mapping onto `otel_traces`. Where the OpenTelemetry Collector's zipkin receiver defines a rule
# (opentelemetry-collector-contrib pkg/translator/zipkin/zipkinv2/to_translator.go) it is followed;
# the other choices are ours:
#
# * ids are lowercased and left-padded with zeros as Zipkin's own `Span.normalizeTraceId` does:
#   trace ids to 32 hex (a 64-bit id keeps its value in the low half, as OTel stores it), span
#   and parent ids to 16. A missing, non-hex, too long or all-zero trace id or id rejects the
#   span; an all-zero parent id, or one equal to the span's id (receiver), means a root span.
# * `kind` CLIENT/SERVER/PRODUCER/CONSUMER -> Client/Server/Producer/Consumer; absent or unknown
#   -> Unspecified, or Internal when the tag `span.kind` is "internal" (receiver's
#   `zipkinKindToSpanKind`). Zipkin's local spans therefore store as Unspecified.
# * timestamps and durations are microseconds -> nanoseconds. A span without a timestamp starts
#   at its first annotation, or is rejected; one ending past the year 2262 (the limit of
#   DateTime64(9)) is rejected. An absent or negative duration is 0 (a negative timestamp is absent),
#   as Zipkin's Span.Builder has them.
# * `localEndpoint` -> ServiceName and resource attributes `service.name`, `host.ip` (the ipv4,
#   else the ipv6) and `net.host.port`. Names keep the case they were sent in (a Zipkin server
#   lowercases service and span names; the Zipkin query API must compare without case).
#   No local service name -> ServiceName "unknown_service", as for OTLP.
# * `remoteEndpoint` -> span attributes `peer.service`, `network.peer.address`/`.port`, and
#   `server.address`/`.port` (`client.address`/`.port` on SERVER spans, whose remote is the
#   caller). A tag of the same name wins. Unparseable IPs are ignored, as Zipkin does.
# * every tag is kept as a span attribute, verbatim. The tag `error` makes the status Error with
#   the tag's value as message (Zipkin's rule: any value marks an error; the receiver only
#   honours "true"); otherwise `otel.status_code` OK/ERROR (+ `otel.status_description`), as the
#   OTel Zipkin exporters send them, sets the status. `otel.scope.name`/`.version` (or the older
#   `otel.library.*`) -> ScopeName/ScopeVersion, else empty (receiver); `w3c.tracestate` ->
#   TraceState (receiver).
# * annotations -> Events (name = value, no attributes). `shared`/`debug` true -> span attributes
#   `zipkin.shared`/`zipkin.debug` = "true", so the query side can tell the shared server half of
#   an RPC (same span id as its client) from a duplicate.


class _Invalid(Exception):
    """One span cannot be stored; the message says which field and why."""


class _Endpoint(NamedTuple):
    service: str
    ip: str
    port: int


class _Span(NamedTuple):
    """One Zipkin span, read and typed but not yet mapped (kind is Zipkin's upper-case name)."""

    trace_id: str
    span_id: str
    parent_id: str
    kind: str | None
    name: str
    timestamp: int
    duration: int
    local: _Endpoint | None
    remote: _Endpoint | None
    annotations: list[tuple[int, str]]
    tags: dict[str, str]
    debug: bool
    shared: bool


def decode_zipkin_json(body: bytes) -> Decoded:
    """Zipkin v2 JSON: an array of span objects (what Brave, Sleuth and zipkin-js POST)."""
    document = _load_json(body)
    if not isinstance(document, list):
        raise MalformedPayload(f"body must be a JSON array of Zipkin v2 spans, not a JSON {_json_type(document)}")
    return _decode(document, _json_span)


def decode_zipkin_proto(body: bytes) -> Decoded:
    """Zipkin v2 protobuf: a `zipkin.proto3.ListOfSpans` message."""
    message = pb.ListOfSpans()
    try:
        message.ParseFromString(body)
    except DecodeError as exc:
        raise MalformedPayload(f"body is not a protobuf Zipkin ListOfSpans: {exc}") from None
    return _decode(message.spans, _proto_span)


def _decode(items: Iterable[_T], read: Callable[[_T], _Span]) -> Decoded:
    decoded = Decoded(SpanBatch())
    resources: dict[_Endpoint | None, tuple[str, Attributes]] = {}
    for index, item in enumerate(items):
        try:
            span = _checked(read(item))
        except _Invalid as exc:
            decoded.reject(f"span {index}: {exc}")
            continue
        _append(decoded.batch, span, resources)
    return decoded


def _checked(span: _Span) -> _Span:
    """The checks both encodings share: ids present, times in range."""
    if not span.trace_id.strip("0"):
        raise _Invalid("traceId is all zeros" if span.trace_id else "traceId is missing")
    if not span.span_id.strip("0"):
        raise _Invalid("id is all zeros" if span.span_id else "id is missing")
    parent = span.parent_id if span.parent_id.strip("0") and span.parent_id != span.span_id else ""
    if any(not 0 < at <= _MAX_MICROS for at, _ in span.annotations):
        raise _Invalid("an annotation timestamp is missing or past the year 2262")
    start = span.timestamp or min((at for at, _ in span.annotations), default=0)
    if not start:
        raise _Invalid("timestamp is missing and there is no annotation to start the span at")
    if start + span.duration > _MAX_MICROS:
        raise _Invalid(f"timestamp {start} + duration {span.duration} µs is past the year 2262")
    return span._replace(parent_id=parent, timestamp=start)


# -- columns ------------------------------------------------------------------------


def _append(batch: SpanBatch, span: _Span, resources: dict[_Endpoint | None, tuple[str, Attributes]]) -> None:
    tags = span.tags
    service, resource = _resource(span.local, resources)
    code, message = _status(tags)
    batch.timestamp_ns.append(span.timestamp * 1000)
    batch.trace_id.append(span.trace_id)
    batch.span_id.append(span.span_id)
    batch.parent_span_id.append(span.parent_id)
    batch.trace_state.append(tags.get("w3c.tracestate", ""))
    batch.span_name.append(span.name)
    batch.span_kind.append(_kind(span.kind, tags))
    batch.service_name.append(service)
    batch.resource_attributes.append(resource)
    batch.scope_name.append(tags.get("otel.scope.name") or tags.get("otel.library.name", ""))
    batch.scope_version.append(tags.get("otel.scope.version") or tags.get("otel.library.version", ""))
    batch.span_attributes.append(_attributes(span))
    batch.duration_ns.append(span.duration * 1000)
    batch.status_code.append(code)
    batch.status_message.append(message)
    batch.event_timestamp_ns.append([at * 1000 for at, _ in span.annotations])
    batch.event_name.append([value for _, value in span.annotations])
    batch.event_attributes.append([{} for _ in span.annotations])
    batch.link_trace_id.append([])
    batch.link_span_id.append([])
    batch.link_trace_state.append([])
    batch.link_attributes.append([])


def _kind(kind: str | None, tags: dict[str, str]) -> str:
    if kind is None:
        return "Internal" if tags.get("span.kind") == "internal" else "Unspecified"
    return KINDS.get(kind, "Unspecified")


def _status(tags: dict[str, str]) -> tuple[str, str]:
    if "error" in tags:
        return "Error", tags["error"]
    code = _OTEL_STATUS.get(tags.get("otel.status_code", "").upper(), "Unset")
    return code, tags.get("otel.status_description", "") if code == "Error" else ""


def _resource(local: _Endpoint | None, cache: dict[_Endpoint | None, tuple[str, Attributes]]) -> tuple[str, Attributes]:
    """ServiceName and resource attributes, one shared map per distinct local endpoint."""
    found = cache.get(local)
    if found is None:
        resource: Attributes = {}
        if local is not None:
            pairs = (("service.name", local.service), ("host.ip", local.ip), ("net.host.port", _port_text(local)))
            resource = {key: value for key, value in pairs if value}
        found = cache[local] = (resource.get("service.name", UNKNOWN_SERVICE), resource)
    return found


def _attributes(span: _Span) -> Attributes:
    attributes = dict(span.tags)
    remote = span.remote
    if remote is not None:
        side = "client" if span.kind == "SERVER" else "server"
        port = _port_text(remote)
        pairs = (
            ("peer.service", remote.service),
            ("network.peer.address", remote.ip),
            ("network.peer.port", port),
            (f"{side}.address", remote.ip),
            (f"{side}.port", port),
        )
        for key, value in pairs:
            if value:
                attributes.setdefault(key, value)
    if span.shared:
        attributes["zipkin.shared"] = "true"
    if span.debug:
        attributes["zipkin.debug"] = "true"
    return capped(attributes)  # as OTLP spans' attributes, marked when cut


def _port_text(endpoint: _Endpoint) -> str:
    return str(endpoint.port) if endpoint.port else ""


def _endpoint(service: str, ip: str, port: int) -> _Endpoint | None:
    return _Endpoint(service, ip, port) if service or ip or port else None


@functools.lru_cache(maxsize=4096)
def _ip(value: str | bytes) -> str:
    """Text of an IP address given as text or packed bytes, "" when it is not one (Zipkin
    ignores such addresses too); IPv4-mapped IPv6 becomes the IPv4. Cached: hosts repeat."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return ""
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return str(mapped or address)


def _port(value: int, field: str) -> int:
    """Zipkin's `Endpoint.Builder.port`: negative means absent, above 65535 is invalid."""
    if value > 0xFFFF:
        raise _Invalid(f"{field} {value} is not a TCP port")
    return max(0, value)


# -- JSON ---------------------------------------------------------------------------


def _load_json(body: bytes) -> object:
    if not body.strip():
        raise MalformedPayload("body is empty; send a JSON array of Zipkin v2 spans")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("utf-8", "replace")
    try:
        return json.loads(text.removeprefix("\ufeff"))
    except (ValueError, RecursionError) as exc:
        raise MalformedPayload(f"body is not valid JSON: {exc}") from None


def _json_span(item: object) -> _Span:
    if not isinstance(item, dict):
        raise _Invalid(f"must be a JSON object, not {_json_type(item)}")
    if "binaryAnnotations" in item:
        raise _Invalid("is a Zipkin v1 span (it has binaryAnnotations); only v2 spans are accepted")
    return _Span(
        trace_id=_json_id(item.get("traceId"), "traceId", 32),
        span_id=_json_id(item.get("id"), "id", 16),
        parent_id=_json_id(item.get("parentId"), "parentId", 16),
        kind=_json_kind(item.get("kind")),
        name=_json_text(item.get("name"), "name"),
        timestamp=_json_micros(item.get("timestamp"), "timestamp"),
        duration=_json_micros(item.get("duration"), "duration"),
        local=_json_endpoint(item.get("localEndpoint"), "localEndpoint"),
        remote=_json_endpoint(item.get("remoteEndpoint"), "remoteEndpoint"),
        annotations=_json_annotations(item.get("annotations")),
        tags=_json_tags(item.get("tags")),
        debug=_json_flag(item.get("debug"), "debug"),
        shared=_json_flag(item.get("shared"), "shared"),
    )


def _json_id(value: object, field: str, width: int) -> str:
    """Lower hex left-padded to `width`, or "" when absent."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise _Invalid(f"{field} must be a hex string, not {_json_type(value)}")
    text = value.lower()
    if len(text) > width or not _HEX.issuperset(text):
        raise _Invalid(f"{field} {_show(value)} is not 1 to {width} hex characters")
    return text.rjust(width, "0")


def _json_kind(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Invalid(f"kind must be a string, not {_json_type(value)}")
    return value.upper() or None


def _json_text(value: object, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Invalid(f"{field} must be a string, not {_json_type(value)}")
    return _clean(value)


def _json_micros(value: object, field: str) -> int:
    """A whole count of microseconds; absent is 0 (Zipkin's "unset"), and so is a negative one, as
    Zipkin's `Span.Builder` reads it (a negative duration from a skewed clock keeps its span)."""
    if value is None:
        return 0
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Invalid(f"{field} {value} is not a finite number")
        value = round(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"{field} must be a number of microseconds, not {_json_type(value)}")
    return max(0, value)


def _json_flag(value: object, field: str) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    raise _Invalid(f"{field} must be true or false, not {_json_type(value)}")


def _json_endpoint(value: object, field: str) -> _Endpoint | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _Invalid(f"{field} must be a JSON object, not {_json_type(value)}")
    port = value.get("port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int)):
        raise _Invalid(f"{field}.port must be an integer, not {_json_type(port)}")
    ip = _json_ip(value.get("ipv4"), f"{field}.ipv4") or _json_ip(value.get("ipv6"), f"{field}.ipv6")
    return _endpoint(
        _json_text(value.get("serviceName"), f"{field}.serviceName"), ip, _port(port or 0, f"{field}.port")
    )


def _json_ip(value: object, field: str) -> str:
    text = _json_text(value, field)
    return _ip(text) if 0 < len(text) <= 64 else ""  # longer is no IP, and must not fill the cache


def _json_annotations(value: object) -> list[tuple[int, str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Invalid(f"annotations must be a JSON array, not {_json_type(value)}")
    return [_json_annotation(item, f"annotations[{index}]") for index, item in enumerate(value)]


def _json_annotation(value: object, field: str) -> tuple[int, str]:
    if not isinstance(value, dict):
        raise _Invalid(f"{field} must be a JSON object, not {_json_type(value)}")
    return _json_micros(value.get("timestamp"), f"{field}.timestamp"), _json_text(value.get("value"), f"{field}.value")


def _json_tags(value: object) -> dict[str, str]:
    """Tags are strings in Zipkin v2; numbers and booleans some senders write are kept as
    text, a null value is dropped, an object or array rejects the span."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Invalid(f"tags must be a JSON object, not {_json_type(value)}")
    tags: dict[str, str] = {}
    for key, tag in value.items():
        if isinstance(tag, str):
            tags[_clean(key)] = _clean(tag)
        elif isinstance(tag, bool):
            tags[_clean(key)] = "true" if tag else "false"
        elif isinstance(tag, int | float):
            tags[_clean(key)] = repr(tag)
        elif tag is not None:
            raise _Invalid(f"tags[{_show(key)}] must be a string, not {_json_type(tag)}")
    return tags


def _clean(text: str) -> str:
    """Lone surrogates (from escapes like \\ud800) cannot be stored as UTF-8: replace them."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    names = {dict: "object", list: "array", str: "string", int: "number", float: "number"}
    return names.get(type(value), type(value).__name__)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# -- protobuf -----------------------------------------------------------------------


def _proto_span(span: pb.Span) -> _Span:
    return _Span(
        trace_id=_proto_id(span.trace_id, "traceId", (8, 16), 32),
        span_id=_proto_id(span.id, "id", (8,), 16),
        parent_id=_proto_id(span.parent_id, "parentId", (8,), 16),
        kind=_PROTO_KINDS[span.kind] if 0 <= span.kind < len(_PROTO_KINDS) else "UNKNOWN",
        name=_utf8(span.name),
        timestamp=span.timestamp,
        duration=span.duration,
        local=_proto_endpoint(span.local_endpoint, "localEndpoint"),
        remote=_proto_endpoint(span.remote_endpoint, "remoteEndpoint"),
        annotations=[(a.timestamp, _utf8(a.value)) for a in span.annotations],
        tags={_utf8(tag.key): _utf8(tag.value) for tag in span.tags},
        debug=span.debug,
        shared=span.shared,
    )


def _proto_id(raw: bytes, field: str, sizes: tuple[int, ...], width: int) -> str:
    if not raw:
        return ""
    if len(raw) not in sizes:
        expected = " or ".join(str(size) for size in sizes)
        raise _Invalid(f"{field} must be {expected} bytes, not {len(raw)}")
    return raw.hex().rjust(width, "0")


def _proto_endpoint(endpoint: pb.Endpoint, field: str) -> _Endpoint | None:
    ip = _packed_ip(endpoint.ipv4, 4) or _packed_ip(endpoint.ipv6, 16)
    return _endpoint(_utf8(endpoint.service_name), ip, _port(endpoint.port, f"{field}.port"))


def _packed_ip(raw: bytes, size: int) -> str:
    return _ip(raw) if len(raw) == size else ""


def _utf8(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")
