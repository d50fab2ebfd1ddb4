"""Jaeger's v3 query API (``/api/v3``): traces as OTLP JSON, services, operations — what Jaeger 2
and Grafana's newer Jaeger data source call. Shapes: ../shared/reference/query-apis.md."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from tracehouse.query.errors import BadRequest, NotFound
from tracehouse.query.guard import guarded
from tracehouse.query.ids import normalize_trace_id
from tracehouse.query.params import MAX_LIMIT, checked_filters, json_object, parse_duration
from tracehouse.storage import AttributeFilter, Span, TraceQuery, TraceReader

__all__ = ["jaeger_v3_router", "otlp_json"]

#: OTLP's SpanKind and StatusCode numbers, by the names the store keeps.
_KIND = {"Unspecified": 0, "Internal": 1, "Server": 2, "Client": 3, "Producer": 4, "Consumer": 5}
_STATUS = {"Unset": 0, "Ok": 1, "Error": 2}
_KIND_NAMES = {"server", "client", "producer", "consumer", "internal"}


def _attributes(values: dict[str, str]) -> list[dict[str, Any]]:
    return [{"key": k, "value": {"stringValue": v}} for k, v in sorted(values.items())]


def otlp_span(span: Span) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": span.trace_id,
        "spanId": span.span_id,
        "traceState": span.trace_state,
        "name": span.name,
        "kind": _KIND.get(span.kind, 0),
        "startTimeUnixNano": str(span.timestamp_ns),
        "endTimeUnixNano": str(span.timestamp_ns + span.duration_ns),
        "attributes": _attributes(span.attributes),
        "events": [
            {"timeUnixNano": str(e.timestamp_ns), "name": e.name, "attributes": _attributes(e.attributes)}
            for e in span.events
        ],
        "links": [
            {
                "traceId": k.trace_id,
                "spanId": k.span_id,
                "traceState": k.trace_state,
                "attributes": _attributes(k.attributes),
            }
            for k in span.links
        ],
        "status": {"code": _STATUS.get(span.status_code, 0), "message": span.status_message},
    }
    if span.parent_span_id:
        out["parentSpanId"] = span.parent_span_id
    return out


def _link(trace_id: str, span_id: str, trace_state: str, attributes: dict[str, str]) -> dict[str, Any]:
    return {"traceId": trace_id, "spanId": span_id, "traceState": trace_state, "attributes": _attributes(attributes)}


def otlp_json(spans: list[Span]) -> dict[str, Any]:
    """Spans grouped as OTLP ``resourceSpans`` → ``scopeSpans`` (ids hex, int64 as strings)."""
    resources: dict[tuple[tuple[str, str], ...], dict[tuple[str, str], list[dict[str, Any]]]] = {}
    for span in spans:
        resource = tuple(sorted(span.resource_attributes.items()))
        scopes = resources.setdefault(resource, {})
        scopes.setdefault((span.scope_name, span.scope_version), []).append(otlp_span(span))
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": _attributes(dict(resource))},
                "scopeSpans": [
                    {"scope": {"name": name, "version": version}, "spans": found}
                    for (name, version), found in scopes.items()
                ],
            }
            for resource, scopes in resources.items()
        ]
    }


def _rfc3339(name: str, text: str) -> int:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name}: {text[:40]!r} is not an RFC 3339 time (2026-11-25T17:00:00Z)") from None
    if moment.tzinfo is None:
        raise BadRequest(f"{name}: {text[:40]!r} needs a time zone (Z or +01:00)")
    return int(moment.timestamp() * 1e6) * 1000


def jaeger_v3_router(reader: TraceReader) -> APIRouter:
    router = APIRouter(prefix="/api/v3", tags=["jaeger"])

    @router.get("/services")
    def services() -> dict[str, Any]:
        return {"services": guarded(reader.services)}

    @router.get("/operations")
    def operations(service: str, span_kind: Annotated[str | None, Query(alias="spanKind")] = None) -> dict[str, Any]:
        if span_kind and span_kind.lower() not in _KIND_NAMES:
            raise BadRequest(f"spanKind: {span_kind[:40]!r} is not one of {', '.join(sorted(_KIND_NAMES))}")
        found = guarded(lambda: reader.operations(service))
        return {
            "operations": [
                {"name": op.name, "spanKind": op.span_kind.lower()}
                for op in found
                if not span_kind or op.span_kind.lower() == span_kind.lower()
            ]
        }

    @router.get("/traces/{trace_id}")
    def trace(trace_id: str) -> dict[str, Any]:
        normalized = normalize_trace_id(trace_id)
        spans = guarded(lambda: reader.get_trace(normalized))
        if not spans:
            raise NotFound(f"trace {normalized} not found")
        return {"result": otlp_json(spans)}

    @router.get("/traces")
    def find_traces(
        request: Request,
        service: Annotated[str | None, Query(alias="query.serviceName")] = None,
        operation: Annotated[str | None, Query(alias="query.operationName")] = None,
        attributes: Annotated[str | None, Query(alias="query.attributes", description="JSON object")] = None,
        start_min: Annotated[str | None, Query(alias="query.startTimeMin", description="RFC 3339")] = None,
        start_max: Annotated[str | None, Query(alias="query.startTimeMax", description="RFC 3339")] = None,
        duration_min: Annotated[str | None, Query(alias="query.durationMin", description="e.g. 100ms")] = None,
        duration_max: Annotated[str | None, Query(alias="query.durationMax")] = None,
        depth: Annotated[int, Query(alias="query.searchDepth", ge=1, le=MAX_LIMIT)] = 20,
    ) -> dict[str, Any]:
        """Traces matching every condition, as one OTLP JSON result; 404 when none does. Each
        parameter may also be spelled as Jaeger's HTTP gateway does (`query.service_name`,
        `query.start_time_min`, ..., `query.num_traces`)."""
        snake = _snake_case_params(request)
        service = service or snake.get("serviceName")
        operation = operation or snake.get("operationName")
        attributes = attributes or snake.get("attributes")
        start_min = start_min or snake.get("startTimeMin")
        start_max = start_max or snake.get("startTimeMax")
        duration_min = duration_min or snake.get("durationMin")
        duration_max = duration_max or snake.get("durationMax")
        if "query.searchDepth" not in request.query_params and (text := snake.get("searchDepth")):
            depth = _depth(text)
        if not start_min or not start_max:
            raise BadRequest("query.startTimeMin and query.startTimeMax are required (RFC 3339)")
        query = TraceQuery(
            start_ns=_rfc3339("query.startTimeMin", start_min),
            end_ns=_rfc3339("query.startTimeMax", start_max),
            service=service or None,
            operation=operation or None,
            attributes=_attribute_filters(attributes),
            min_duration_ns=parse_duration("query.durationMin", duration_min) if duration_min else None,
            max_duration_ns=parse_duration("query.durationMax", duration_max) if duration_max else None,
            limit=depth,
        )
        if query.start_ns >= query.end_ns:
            raise BadRequest("query.startTimeMin: must be before query.startTimeMax")
        found = guarded(lambda: reader.find_traces(query))
        spans = [span for summary in found for span in _spans(reader, summary.trace_id)]
        if not spans:
            raise NotFound("no trace matches")
        return {"result": otlp_json(spans)}

    return router


_SNAKE_NAMES = {
    "query.service_name": "serviceName",
    "query.operation_name": "operationName",
    "query.attributes": "attributes",
    "query.start_time_min": "startTimeMin",
    "query.start_time_max": "startTimeMax",
    "query.duration_min": "durationMin",
    "query.duration_max": "durationMax",
    "query.search_depth": "searchDepth",
    "query.num_traces": "searchDepth",
}


def _snake_case_params(request: Request) -> dict[str, str]:
    """The search parameters given in the gateway's snake_case, by their camelCase name."""
    return {
        camel: request.query_params[snake] for snake, camel in _SNAKE_NAMES.items() if snake in request.query_params
    }


def _depth(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise BadRequest(f"query.search_depth: must be a whole number from 1 to {MAX_LIMIT} (got {text[:40]!r})")
    return int(text)


def _spans(reader: TraceReader, trace_id: str) -> list[Span]:
    return guarded(lambda: reader.get_trace(trace_id))


def _attribute_filters(text: str | None) -> tuple[AttributeFilter, ...]:
    if not text:
        return ()
    pairs = json_object("query.attributes", text, '{"http.method":"GET"}')
    if not all(isinstance(v, str) for v in pairs.values()):
        raise BadRequest('query.attributes: must be a JSON object of strings, e.g. {"http.method":"GET"}')
    return checked_filters("query.attributes", [AttributeFilter(k, "=", v) for k, v in pairs.items()])
