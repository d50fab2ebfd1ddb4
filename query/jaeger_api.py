"""The Jaeger query HTTP API that jaeger-ui and Grafana's Jaeger data source call
(`/api/services`, `/api/operations`, `/api/traces` ...), in Jaeger's envelope
`{data, total, limit, offset, errors}` and units (µs), over `TraceReader`."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from tracehouse.query.errors import BadRequest
from tracehouse.query.guard import guarded
from tracehouse.query.ids import compact_trace_id, normalize_trace_id
from tracehouse.query.params import MAX_LIMIT, checked_filters, duration_bounds, json_object, parse_duration
from tracehouse.query.views import node_ids
from tracehouse.storage import AttributeFilter, DependencyReader, Span, TraceQuery, TraceReader

_KINDS = {
    "Server": "server",
    "Client": "client",
    "Producer": "producer",
    "Consumer": "consumer",
    "Internal": "internal",
}


class Reader(TraceReader, DependencyReader, Protocol):
    """Traces and the service graph."""


def envelope(data: Any, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    total = len(data) if isinstance(data, list) else 0
    return {"data": data, "total": total, "limit": 0, "offset": 0, "errors": errors}


def error_response(status: int, message: str) -> JSONResponse:
    """An error as jaeger-query answers it (jaeger-ui and Grafana show `errors[0].msg`)."""
    return JSONResponse(envelope(None, [{"code": status, "msg": message}]), status_code=status)


def is_jaeger_path(path: str) -> bool:
    """`/api/...` paths other than the native (`/api/v1`), Zipkin (`/api/v2`) and Jaeger v3 ones."""
    return path.startswith("/api/") and not path.startswith(("/api/v1/", "/api/v2/", "/api/v3/"))


def jaeger_router(reader: Reader) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["jaeger"])

    @router.get("/services")
    def services() -> dict[str, Any]:
        return envelope(guarded(reader.services))

    @router.get("/services/{service:path}/operations")
    def service_operations(service: str) -> dict[str, Any]:
        return envelope(sorted({op.name for op in guarded(lambda: reader.operations(service))}))

    @router.get("/operations")
    def operations(service: str, span_kind: Annotated[str | None, Query(alias="spanKind")] = None) -> dict[str, Any]:
        found = [
            {"name": op.name, "spanKind": _KINDS.get(op.span_kind, "unspecified")}
            for op in guarded(lambda: reader.operations(service))
        ]
        return envelope([op for op in found if not span_kind or op["spanKind"] == span_kind])

    @router.get("/traces")
    def traces(
        service: str | None = None,
        operation: str | None = None,
        tags: str | None = None,
        tag: Annotated[list[str] | None, Query(description="key:value, repeatable (Jaeger's older form)")] = None,
        trace_ids: Annotated[list[str] | None, Query(alias="traceID", description="these traces only")] = None,
        start: Annotated[int | None, Query(description="µs")] = None,
        end: Annotated[int | None, Query(description="µs")] = None,
        lookback: str | None = None,
        min_duration: Annotated[str | None, Query(alias="minDuration")] = None,
        max_duration: Annotated[str | None, Query(alias="maxDuration")] = None,
        limit: Annotated[int, Query(ge=1, description=f"at most {MAX_LIMIT} are returned")] = 20,
    ) -> dict[str, Any]:
        if trace_ids:  # as jaeger-query: the listed traces, whatever the other parameters say
            if len(trace_ids) > MAX_LIMIT:
                raise BadRequest(f"traceID: at most {MAX_LIMIT} trace ids (got {len(trace_ids)})")
            wanted = dict.fromkeys(normalize_trace_id(t) for t in trace_ids)
            return envelope([t for t in (_trace(reader, trace_id) for trace_id in wanted) if t["spans"]])
        end_us = end if end is not None else int(time.time() * 1e6)
        default_start = end_us - (_lookback_us(lookback) if lookback and start is None else 3_600_000_000)
        low, high = duration_bounds(min_duration, max_duration)
        query = TraceQuery(
            start_ns=(start if start is not None else default_start) * 1000,
            end_ns=end_us * 1000 + 1,
            service=service or None,
            operation=operation or None,
            attributes=checked_filters("tags", _tags(tags) + _tag_pairs(tag or [])),
            errors_only=_errors_only(tags) or "error:true" in (tag or []),
            min_duration_ns=low,
            max_duration_ns=high,
            limit=min(limit, MAX_LIMIT),
        )
        found = guarded(lambda: reader.find_traces(query))
        return envelope([_trace(reader, t.trace_id) for t in found])

    # Not in the OpenAPI document: a stand-in, not an endpoint of ours (and a 501 by design).
    @router.get("/metrics/{name}", include_in_schema=False)
    def metrics(name: str) -> JSONResponse:
        """Jaeger's service performance metrics (jaeger-ui's Monitor tab) answer 501 when no
        metrics store is configured, as here: the dashboard's service pages show RED."""
        return error_response(501, f"metrics querying is currently disabled ({name[:40]}); see the dashboard")

    @router.get("/traces/{trace_id}", response_model=None)
    def trace(trace_id: str) -> Response | dict[str, Any]:
        normalized = normalize_trace_id(trace_id)
        spans = guarded(lambda: reader.get_trace(normalized))
        if not spans:
            return error_response(404, "trace not found")
        return envelope([jaeger_trace(normalized, spans)])

    @router.get("/dependencies")
    def dependencies(
        end_ts: Annotated[int, Query(alias="endTs", description="epoch ms")],
        lookback: Annotated[int, Query(ge=1, description="ms")] = 86_400_000,
    ) -> dict[str, Any]:
        found = guarded(lambda: reader.dependencies((end_ts - lookback) * 10**6, end_ts * 10**6 + 1))
        node_id = node_ids(found)
        return envelope(
            [
                {
                    "parent": node_id(k.parent, k.parent_kind),
                    "child": node_id(k.child, k.child_kind),
                    "callCount": k.calls,
                }
                for k in found.links
            ]
        )

    return router


def _trace(reader: TraceReader, trace_id: str) -> dict[str, Any]:
    return jaeger_trace(trace_id, guarded(lambda: reader.get_trace(trace_id)))


def _lookback_us(text: str) -> int:
    """jaeger-ui sends e.g. 1h, 2d or "custom" (then start/end are given)."""
    if text.endswith("d") and text[:-1].isdigit():
        return int(text[:-1]) * 86_400_000_000
    return 3_600_000_000 if text == "custom" else parse_duration("lookback", text) // 1000


def _tags(text: str | None) -> tuple[AttributeFilter, ...]:
    if not text:
        return ()
    tags = json_object("tags", text, '{"http.status_code":"500"}')
    if not all(isinstance(v, str) for v in tags.values()):
        raise BadRequest("tags: values must be strings, as Jaeger requires")
    return tuple(AttributeFilter(str(k), "=", v) for k, v in tags.items() if k != "error")


def _tag_pairs(pairs: list[str]) -> tuple[AttributeFilter, ...]:
    """Jaeger's repeatable `tag=key:value`."""
    filters = []
    for pair in pairs:
        key, sep, value = pair.partition(":")
        if not sep or not key:
            raise BadRequest(f"tag: {pair[:80]!r} is not key:value")
        if key != "error":
            filters.append(AttributeFilter(key, "=", value))
    return tuple(filters)


def _errors_only(text: str | None) -> bool:
    """Jaeger's error=true tag: the span's status is Error (stored as StatusCode, not a tag)."""
    try:
        tags = json.loads(text) if text else {}
    except (ValueError, RecursionError):  # as `_tags` refuses it
        return False
    return isinstance(tags, dict) and tags.get("error") == "true"


def _kv(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "type": "string", "value": value}


def jaeger_trace(trace_id: str, spans: list[Span]) -> dict[str, Any]:
    processes: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
    out_spans = []
    ids = _deduplicated_ids(spans)
    for span in spans:
        resource = tuple(sorted(span.resource_attributes.items()))
        process_id = processes.setdefault((span.service_name, resource), f"p{len(processes) + 1}")
        out_spans.append(jaeger_span(span, process_id, *ids.get(id(span), (span.span_id, span.parent_span_id))))
    return {
        "traceID": compact_trace_id(trace_id),
        "spans": out_spans,
        "processes": {
            pid: {"serviceName": service, "tags": [_kv(k, v) for k, v in resource if k != "service.name"]}
            for (service, resource), pid in processes.items()
        },
        "warnings": None,
    }


def _deduplicated_ids(spans: list[Span]) -> dict[int, tuple[str, str]]:
    """Jaeger's span-id deduper, for Zipkin's shared RPC spans (client and server halves under one
    id): the server half gets an id of its own and becomes the client half's child, and the spans
    below the shared id move under it. (span object id -> (span id, parent id)) of the spans moved."""
    clients = {s.span_id for s in spans if s.kind == "Client"}
    shared = [s for s in spans if s.kind == "Server" and s.span_id in clients]
    if not shared:
        return {}
    taken = {s.span_id for s in spans}
    renamed: dict[str, str] = {}
    moved: dict[int, tuple[str, str]] = {}
    next_id = max(int(i, 16) for i in taken if i) + 1
    for span in shared:
        while (next_id := next_id & 0xFFFFFFFFFFFFFFFF or 1) and f"{next_id:016x}" in taken:
            next_id += 1  # past the largest 64-bit id: from 1 again (never the zero id)
        renamed[span.span_id] = new_id = f"{next_id:016x}"
        taken.add(new_id)
        moved[id(span)] = (new_id, span.span_id)
    for span in spans:
        if span.parent_span_id in renamed and id(span) not in moved:
            moved[id(span)] = (span.span_id, renamed[span.parent_span_id])
    return moved


def jaeger_span(span: Span, process_id: str, span_id: str = "", parent_id: str | None = None) -> dict[str, Any]:
    """`span` in Jaeger's shape; `span_id`/`parent_id` replace its own (`_deduplicated_ids`)."""
    span_id = span_id or span.span_id
    parent_id = span.parent_span_id if parent_id is None else parent_id
    tags = [_kv(k, v) for k, v in sorted(span.attributes.items()) if not k.startswith("zipkin.")]
    if span.kind in _KINDS:
        tags.append(_kv("span.kind", _KINDS[span.kind]))
    if span.status_code in ("Ok", "Error"):
        tags.append(_kv("otel.status_code", span.status_code.upper()))
    if span.status_code == "Error":
        tags.append({"key": "error", "type": "bool", "value": True})
        if span.status_message:
            tags.append(_kv("otel.status_description", span.status_message))
    scope = (("otel.scope.name", span.scope_name), ("otel.scope.version", span.scope_version))
    tags.extend(_kv(k, v) for k, v in scope if v)
    trace_id = compact_trace_id(span.trace_id)
    references = [{"refType": "CHILD_OF", "traceID": trace_id, "spanID": parent_id}]
    return {
        "traceID": trace_id,
        "spanID": span_id,
        "operationName": span.name,
        "references": references if parent_id else [],
        "startTime": span.timestamp_ns // 1000,
        "duration": span.duration_ns // 1000,
        "tags": tags,
        "logs": [
            {
                "timestamp": e.timestamp_ns // 1000,
                "fields": [_kv("event", e.name)] + [_kv(k, v) for k, v in e.attributes.items()],
            }
            for e in span.events
        ],
        "processID": process_id,
        "warnings": None,
        "flags": 3 if span.attributes.get("zipkin.debug") == "true" else 1,  # sampled, + debug
    }
