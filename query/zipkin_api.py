"""The Zipkin v2 read API (Zipkin Lens, Grafana's Zipkin data source): Zipkin's paths,
parameters, units (µs, ms) and answers, over the storage readers. Autocomplete keys and
values (and remote services) come from the spans of the last day."""

from __future__ import annotations

import time
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse, Response

from tracehouse.query.errors import BadRequest
from tracehouse.query.guard import guarded
from tracehouse.query.ids import compact_trace_id, normalize_trace_id
from tracehouse.query.params import MAX_LIMIT, check_durations, checked_filters
from tracehouse.query.views import node_ids
from tracehouse.storage import AttributeFilter, DependencyReader, Span, TraceQuery, TraceReader

_KINDS = {"Server": "SERVER", "Client": "CLIENT", "Producer": "PRODUCER", "Consumer": "CONSUMER"}
DAY_MS = 86_400_000


class Reader(TraceReader, DependencyReader, Protocol):
    """Traces and the service graph."""


def zipkin_router(reader: Reader) -> APIRouter:
    router = APIRouter(prefix="/api/v2", tags=["zipkin"])

    @router.get("/services")
    def services() -> list[str]:
        return guarded(reader.services)

    @router.get("/spans")
    def span_names(service_name: Annotated[str, Query(alias="serviceName")]) -> list[str]:
        service = _stored(service_name, guarded(reader.services))
        return sorted({op.name for op in guarded(lambda: reader.operations(service))})

    @router.get("/remoteServices")
    def remote_services(service_name: Annotated[str, Query(alias="serviceName")]) -> list[str]:
        start_ns, end_ns = _last_day()
        service = _stored(service_name, guarded(reader.services))
        found = guarded(lambda: reader.attribute_values("peer.service", start_ns, end_ns, service=service))
        return sorted(value for value, _ in found)

    @router.get("/autocompleteKeys")
    def autocomplete_keys() -> list[str]:
        start_ns, end_ns = _last_day()
        found = guarded(lambda: reader.attribute_keys(start_ns, end_ns))
        return sorted({key for key, scope, _ in found if scope == "span"})

    @router.get("/autocompleteValues")
    def autocomplete_values(key: Annotated[str, Query(min_length=1, max_length=256)]) -> list[str]:
        start_ns, end_ns = _last_day()
        return sorted(value for value, _ in guarded(lambda: reader.attribute_values(key, start_ns, end_ns)))

    @router.get("/traces")
    def traces(
        service_name: Annotated[str | None, Query(alias="serviceName")] = None,
        span_name: Annotated[str | None, Query(alias="spanName")] = None,
        remote_service: Annotated[str | None, Query(alias="remoteServiceName")] = None,
        annotation_query: Annotated[str | None, Query(alias="annotationQuery")] = None,
        min_duration: Annotated[int | None, Query(alias="minDuration", ge=0, description="µs")] = None,
        max_duration: Annotated[int | None, Query(alias="maxDuration", ge=0, description="µs")] = None,
        end_ts: Annotated[int | None, Query(alias="endTs", description="epoch ms")] = None,
        lookback: Annotated[int, Query(ge=1, description="ms")] = DAY_MS,
        limit: Annotated[int, Query(ge=1, description=f"at most {MAX_LIMIT} are returned")] = 10,
    ) -> list[list[dict[str, Any]]]:
        end_ms = end_ts if end_ts is not None else int(time.time() * 1000)
        low = None if min_duration is None else min_duration * 1000
        high = None if max_duration is None else max_duration * 1000
        check_durations(low, high)
        # Zipkin compares names without case (a Zipkin server stores them lowercased).
        service = _stored(service_name, guarded(reader.services)) if service_name else None
        operation = None
        if span_name not in (None, "", "all"):
            known = [op.name for op in guarded(lambda: reader.operations(service))] if service else []
            operation = _stored(str(span_name), known)
        filters, errors_only = parse_annotation_query(annotation_query or "")
        if remote_service:
            filters += (AttributeFilter("peer.service", "=", remote_service),)
        query = TraceQuery(
            start_ns=(end_ms - lookback) * 10**6,
            end_ns=end_ms * 10**6 + 1,
            service=service,
            operation=operation,
            attributes=checked_filters("annotationQuery", filters),
            errors_only=errors_only,
            min_duration_ns=low,
            max_duration_ns=high,
            limit=min(limit, MAX_LIMIT),
        )
        found = guarded(lambda: reader.find_traces(query))
        return [spans_json(reader, t.trace_id) for t in found]

    @router.get("/trace/{trace_id}", response_model=None)
    def trace(trace_id: str) -> Response | list[dict[str, Any]]:
        spans = guarded(lambda: reader.get_trace(normalize_trace_id(trace_id)))
        if not spans:
            return PlainTextResponse(f"Trace not found: {trace_id[:64]}", status_code=404)
        return [zipkin_span(s) for s in spans]

    @router.get("/traceMany")
    def trace_many(trace_ids: Annotated[str, Query(alias="traceIds")]) -> list[list[dict[str, Any]]]:
        ids = [normalize_trace_id(t) for t in trace_ids.split(",") if t.strip()]
        if len(ids) < 2 or len(set(ids)) != len(ids):
            raise BadRequest("traceIds: give at least two distinct comma-separated trace ids")
        return [spans for spans in (spans_json(reader, t) for t in ids) if spans]

    @router.get("/dependencies")
    def dependencies(
        end_ts: Annotated[int, Query(alias="endTs", description="epoch ms")],
        lookback: Annotated[int, Query(ge=1, description="ms")] = DAY_MS,
    ) -> list[dict[str, Any]]:
        found = guarded(lambda: reader.dependencies((end_ts - lookback) * 10**6, end_ts * 10**6 + 1))
        node_id = node_ids(found)
        return [
            {
                "parent": node_id(link.parent, link.parent_kind),
                "child": node_id(link.child, link.child_kind),
                "callCount": link.calls,
                "errorCount": link.errors,
            }
            for link in found.links
        ]

    return router


def _last_day() -> tuple[int, int]:
    now = time.time_ns()
    return now - DAY_MS * 10**6, now + 1


def spans_json(reader: TraceReader, trace_id: str) -> list[dict[str, Any]]:
    return [zipkin_span(s) for s in guarded(lambda: reader.get_trace(trace_id))]


def parse_annotation_query(text: str) -> tuple[tuple[AttributeFilter, ...], bool]:
    """Zipkin's `k=v and word`: k=v matches a tag, a bare word a tag key or an annotation. `error`
    and `error=true` are the span's error status (shown as the tag `error`), returned apart."""
    filters = []
    errors_only = False
    for term in (t.strip() for t in text.split(" and ")):
        if term in ("error", "error=true"):
            errors_only = True
        elif term:
            key, sep, value = term.partition("=")
            filters.append(AttributeFilter(key, "=", value) if sep else AttributeFilter(term, "annotated"))
    return tuple(filters), errors_only


def _stored(name: str, names: list[str]) -> str:
    """`name` as stored: itself, else the stored name equal to it ignoring case."""
    if name in names:
        return name
    folded = name.casefold()
    return next((n for n in names if n.casefold() == folded), name)


def zipkin_span(span: Span) -> dict[str, Any]:
    tags = {k: v for k, v in span.attributes.items() if not k.startswith("zipkin.")}
    if span.status_code == "Error":
        tags.setdefault("error", span.status_message or "true")
    out: dict[str, Any] = {
        "traceId": compact_trace_id(span.trace_id),
        "id": span.span_id,
        "name": span.name,
        "timestamp": span.timestamp_ns // 1000,
        "duration": max(1, span.duration_ns // 1000),
        "localEndpoint": _endpoint(span.service_name, span.resource_attributes.get("host.ip", ""),
                                   span.resource_attributes.get("net.host.port", "")),
        "annotations": [{"timestamp": e.timestamp_ns // 1000, "value": e.name} for e in span.events],
        "tags": tags,
    }  # fmt: skip
    if span.parent_span_id:
        out["parentId"] = span.parent_span_id
    if span.kind in _KINDS:
        out["kind"] = _KINDS[span.kind]
    remote = _endpoint(span.attributes.get("peer.service", ""), span.attributes.get("network.peer.address", ""),
                       span.attributes.get("network.peer.port", ""))  # fmt: skip
    if remote:
        out["remoteEndpoint"] = remote
    for flag in ("shared", "debug"):
        if span.attributes.get(f"zipkin.{flag}") == "true":
            out[flag] = True
    return out


def _endpoint(service: str, address: str, port: str) -> dict[str, str | int]:
    """A Zipkin endpoint from what the Zipkin decoder (collector/zipkin.py) stored of it."""
    endpoint: dict[str, str | int] = {"serviceName": service} if service else {}
    if address:
        endpoint["ipv6" if ":" in address else "ipv4"] = address
    if port.isascii() and port.isdigit():
        endpoint["port"] = int(port)
    return endpoint
