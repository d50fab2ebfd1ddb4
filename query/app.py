"""The query API (FastAPI): native `/api/v1`, health. Reads only through `TraceReader`.

Never touches SQL or the collector; every failure becomes an `ApiError` answer here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Protocol

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline

from tracehouse.query.auth import TokenGate
from tracehouse.query.breakers import breaker_router
from tracehouse.query.errors import ApiError, NotFound
from tracehouse.query.guard import guarded
from tracehouse.query.hosts import LoopbackHosts, allowed_hosts_from_env
from tracehouse.query.ids import normalize_trace_id
from tracehouse.query.jaeger_api import error_response as jaeger_error
from tracehouse.query.jaeger_api import is_jaeger_path, jaeger_router
from tracehouse.query.jaeger_v3 import jaeger_v3_router
from tracehouse.query.params import red_query, time_range, trace_query
from tracehouse.query.views import (
    dependencies_json,
    operation_json,
    operation_stats_json,
    red_json,
    summary_json,
    trace_json,
)
from tracehouse.query.zipkin_api import zipkin_router
from tracehouse.storage import MAX_TRACE_SPANS, DependencyReader, MetricsReader, TraceReader
from tracehouse.storage.seams import BreakerStore

log = logging.getLogger(__name__)

Health = Callable[[], dict[str, Any]]


class Reader(TraceReader, MetricsReader, DependencyReader, BreakerStore, Protocol):
    """What the query API reads: traces, metrics, the service graph, breaker stats."""

    def breaker_clusters(self, since_s: int) -> list[tuple[str, int, int, int]]: ...


def build_query_app(reader: Reader, health: Health, *, allowed_hosts: Iterable[str] | None = None) -> FastAPI:
    """The API app. On loopback without a token it answers only requests for the loopback's names and
    `allowed_hosts` (default: `hosts.ALLOWED_HOSTS_ENV`'s), against DNS rebinding (`LoopbackHosts`)."""
    app = FastAPIOffline(title="Tracehouse query API", version="1")
    _install_error_handlers(app)
    _guard_hosts(app, allowed_hosts)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, Any]:
        """Liveness and store status."""
        return {"status": "ok", **guarded(health)}

    @app.get("/api/v1/services", tags=["native"])
    def services() -> dict[str, Any]:
        """Every service that sent spans still retained, sorted."""
        return {"services": guarded(reader.services)}

    @app.get("/api/v1/services/{service:path}/operations", tags=["native"])
    def operations(service: str) -> dict[str, Any]:
        """Span names of one service with their span kinds."""
        found = guarded(lambda: reader.operations(service))
        return {"service": service, "operations": [operation_json(op) for op in found]}

    @app.get("/api/v1/traces", tags=["native"])
    def find_traces(
        service: str | None = None,
        operation: str | None = None,
        attr: Annotated[list[str], Query(description="key=value, key!=value, key=~regex, key, !key")] = [],  # noqa: B006
        min_duration: Annotated[str | None, Query(alias="minDuration", description="e.g. 250ms, 1.5s")] = None,
        max_duration: Annotated[str | None, Query(alias="maxDuration")] = None,
        start: Annotated[str | None, Query(description="epoch µs or ISO 8601; default end - 1h")] = None,
        end: Annotated[str | None, Query(description="epoch µs or ISO 8601; default now")] = None,
        error: bool = False,
        limit: int = 20,
        parent_service: Annotated[
            str | None, Query(alias="parentService", description="the span's parent is of this service")
        ] = None,
        peer: Annotated[
            str | None,
            Query(description="a client/producer span calling (a consumer span reading) this database, queue or peer"),
        ] = None,
    ) -> dict[str, Any]:
        """Trace summaries, newest first, of traces with a span (started in [start, end))
        matching every condition. Attribute conditions look at span and resource attributes;
        ``service`` + ``parentService`` or ``service`` + ``peer`` are the calls of a service map edge."""
        query = trace_query(
            service=service, operation=operation, attributes=attr, min_duration=min_duration,
            max_duration=max_duration, start=start, end=end, errors_only=error, limit=limit,
            parent_service=parent_service, peer=peer,
        )  # fmt: skip
        found = guarded(lambda: reader.find_traces(query))
        return {"traces": [summary_json(s) for s in found], "limit": limit}

    @app.get("/api/v1/metrics/red", tags=["native"])
    def red_metrics(
        service: str,
        operation: str | None = None,
        span_kind: Annotated[
            str, Query(alias="spanKind", description="server (with consumer; default) or all")
        ] = "server",
        start: Annotated[str | None, Query(description="epoch µs or ISO 8601; default end - 1h")] = None,
        end: Annotated[str | None, Query(description="epoch µs or ISO 8601; default now")] = None,
        step: Annotated[str, Query(description="e.g. 10s, 1m, 5m")] = "1m",
    ) -> dict[str, Any]:
        """Rate (calls/s), error rate and duration quantiles per step for one service's entry
        spans (or every kind), from the per-minute rollup; raw spans for steps under a minute."""
        query = red_query(service, operation, span_kind, start, end, step)
        points = guarded(lambda: reader.red(query))
        return {"service": service, "operation": operation, "stepSeconds": query.step_s,
                "points": [red_json(p, query.step_s) for p in points]}  # fmt: skip

    @app.get("/api/v1/metrics/operations", tags=["native"])
    def operation_metrics(
        service: str,
        start: Annotated[str | None, Query(description="epoch µs or ISO 8601; default end - 1h")] = None,
        end: Annotated[str | None, Query(description="epoch µs or ISO 8601; default now")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        """Every operation of a service over the range, busiest first: calls, rate, errors,
        p50/p95/p99 (whole minutes, from the per-minute rollup). `rate` is calls/s over the
        seconds the service has sent spans within the range (from its first minute there)."""
        start_ns, end_ns = time_range(start, end)
        found = guarded(lambda: reader.operation_stats(service, start_ns, end_ns, limit))
        now_ns = time.time_ns()
        return {"service": service, "operations": [operation_stats_json(op, start_ns, end_ns, now_ns) for op in found]}

    @app.get("/api/v1/dependencies", tags=["native"])
    def dependencies(
        start: Annotated[str | None, Query(description="epoch µs or ISO 8601; default end - 1h")] = None,
        end: Annotated[str | None, Query(description="epoch µs or ISO 8601; default now")] = None,
    ) -> dict[str, Any]:
        """The service graph: every service that sent spans, the databases, queues and
        un-instrumented peers they call, and the calls between them (lags by the linker's
        interval). An edge's `rate` is calls/s over the seconds both its services have sent
        spans within the range."""
        start_ns, end_ns = time_range(start, end)
        found = guarded(lambda: reader.dependencies(start_ns, end_ns))
        return dependencies_json(found, start_ns, end_ns, time.time_ns())

    @app.get("/api/v1/attributes/keys", tags=["native"])
    def attribute_keys(
        service: str | None = None,
        start: Annotated[str | None, Query(description="epoch µs or ISO 8601; default end - 1h")] = None,
        end: Annotated[str | None, Query(description="epoch µs or ISO 8601; default now")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> dict[str, Any]:
        """Attribute keys seen on spans (``span``) and their resources (``resource``), most
        frequent first — for autocomplete, counted over a sample of up to 100k spans."""
        start_ns, end_ns = time_range(start, end)
        found = guarded(lambda: reader.attribute_keys(start_ns, end_ns, service, limit))
        return {"keys": [{"key": k, "scope": scope, "count": n} for k, scope, n in found]}

    @app.get("/api/v1/attributes/values", tags=["native"])
    def attribute_values(
        key: Annotated[str, Query(min_length=1, max_length=256)],
        prefix: Annotated[str, Query(max_length=256)] = "",
        service: str | None = None,
        start: Annotated[str | None, Query(description="epoch µs or ISO 8601; default end - 1h")] = None,
        end: Annotated[str | None, Query(description="epoch µs or ISO 8601; default now")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> dict[str, Any]:
        """Values of one attribute starting with ``prefix``, most frequent first (autocomplete)."""
        start_ns, end_ns = time_range(start, end)
        found = guarded(lambda: reader.attribute_values(key, start_ns, end_ns, prefix, service, limit))
        return {"key": key, "values": [{"value": v, "count": n} for v, n in found]}

    @app.get("/api/v1/traces/{trace_id}", tags=["native"])
    def get_trace(trace_id: str) -> dict[str, Any]:
        """One trace, spans ordered as a tree, clock skew adjusted, the critical path marked; at most
        100,000 spans (the earliest; ``truncated`` says whether some were cut). 400 for a malformed id,
        404 when unknown."""
        normalized = normalize_trace_id(trace_id)
        spans = guarded(lambda: reader.get_trace(normalized, MAX_TRACE_SPANS + 1))
        if not spans:
            raise NotFound(f"trace {normalized} not found")
        body = trace_json(normalized, spans[:MAX_TRACE_SPANS])
        body["truncated"] = len(spans) > MAX_TRACE_SPANS
        return body

    app.include_router(breaker_router(reader, reader.breaker_clusters))
    app.include_router(zipkin_router(reader))
    app.include_router(jaeger_router(reader))
    app.include_router(jaeger_v3_router(reader))
    _unknown_api_paths(app)
    return app


def build_zipkin_read_app(reader: Reader, api_token: str | None, allowed_hosts: Iterable[str] | None = None) -> Any:
    """Zipkin's read API alone, for the Zipkin receiver's port (a Zipkin server answers both
    there: Lens, Grafana's Zipkin data source): the same routes, errors and API token as the
    query API's port — the ingest token guards only the receiver's POST."""
    app = FastAPI(title="Tracehouse Zipkin API", docs_url=None, redoc_url=None, openapi_url=None)
    _install_error_handlers(app)
    _guard_hosts(app, allowed_hosts)
    app.include_router(zipkin_router(reader))
    _unknown_api_paths(app)
    return TokenGate(app, token=api_token) if api_token else app


def _guard_hosts(app: FastAPI, allowed_hosts: Iterable[str] | None) -> None:
    """Innermost middleware, so a token gate wrapped around the app later (`TokenGate`) runs first
    and marks what it admitted: the Host check is for requests without a token."""
    allowed = allowed_hosts_from_env() if allowed_hosts is None else tuple(allowed_hosts)
    app.add_middleware(LoopbackHosts, allowed=allowed)


def _install_error_handlers(app: FastAPI) -> None:
    def error(request: Request, status: int, message: str) -> JSONResponse:
        if is_jaeger_path(request.url.path):  # in the envelope jaeger-ui and Grafana read
            return jaeger_error(status, message)
        return JSONResponse({"error": {"status": status, "message": message}}, status)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error(request, exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid_parameter(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error.get('loc', ())[1:]) or 'request'}: {error.get('msg', 'invalid')}"
            for error in exc.errors()
        )
        return error(request, 400, problems)


def _unknown_api_paths(app: FastAPI) -> None:
    """After every API route and before the dashboard's catch-all page: an unknown API path
    is a JSON 404, not the dashboard's HTML."""

    @app.api_route("/api/{rest:path}", methods=["GET", "POST", "PUT", "DELETE"], include_in_schema=False)
    async def unknown(rest: str) -> JSONResponse:
        message = f"no such API endpoint: /api/{rest[:200]} (see /docs)"
        return JSONResponse({"error": {"status": 404, "message": message}}, 404)
