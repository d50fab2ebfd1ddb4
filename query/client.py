"""A small typed async client of the native query API (used by the dashboard).

It speaks HTTP only, so the dashboard works the same against a remote query service.
Errors come back as `QueryApiError` carrying the API's own message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict, cast
from urllib.parse import quote

import httpx


class SpanStatusJson(TypedDict):
    code: str
    message: str


class SpanJson(TypedDict):
    traceId: str
    spanId: str
    parentSpanId: str | None
    depth: int
    name: str
    kind: str
    serviceName: str
    startTimeUnixNano: str
    durationNano: int
    status: SpanStatusJson
    attributes: dict[str, str]
    resource: dict[str, str]
    events: list[dict[str, Any]]
    links: list[dict[str, Any]]
    #: Clock-skew notes on a span the API moved.
    warnings: list[str]
    onCriticalPath: bool


class CriticalSegmentJson(TypedDict):
    spanId: str
    startTimeUnixNano: str
    endTimeUnixNano: str


class TraceJson(TypedDict):
    traceId: str
    startTimeUnixNano: str
    durationNano: int
    spanCount: int
    services: list[str]
    spans: list[SpanJson]
    #: Latest first.
    criticalPath: list[CriticalSegmentJson]
    #: True when the API cut the trace at its span limit (the earliest spans kept).
    truncated: NotRequired[bool]


class OperationJson(TypedDict):
    name: str
    spanKind: str
    spans: int


class ServiceCountJson(TypedDict):
    name: str
    spans: int


class AttributeKeyJson(TypedDict):
    key: str
    #: ``span`` or ``resource``.
    scope: str
    count: int


class AttributeValueJson(TypedDict):
    value: str
    count: int


class SummaryJson(TypedDict):
    traceId: str
    rootService: str
    rootOperation: str
    startTimeUnixNano: str
    durationNano: int
    spanCount: int
    errorCount: int
    services: list[ServiceCountJson]


class BreakerRateJson(TypedDict):
    cluster: float
    host: float


class BreakerInstanceJson(TypedDict):
    instance: str
    service: str
    state: str
    requests: int
    errors: int
    errorPercentage: float
    lastSecond: int


class BreakerJson(TypedDict):
    """One breaker of one cluster over the window; ``latency`` in ms keyed mean, p0 … p100."""

    cluster: str
    name: str
    group: str
    hosts: int
    requests: int
    errors: int
    errorPercentage: float
    rate: BreakerRateJson
    counts: dict[str, int]
    latency: dict[str, float]
    open: bool
    states: dict[str, int]
    concurrency: int
    maxConcurrency: int
    properties: dict[str, Any]
    instances: list[BreakerInstanceJson]


class ThreadPoolJson(TypedDict):
    cluster: str
    name: str
    hosts: int
    executed: int
    rejected: int
    rate: BreakerRateJson
    maxActive: int
    gauges: dict[str, float]


class BreakersJson(TypedDict):
    window: int
    end: int
    breakers: list[BreakerJson]
    threadPools: list[ThreadPoolJson]


class BreakerClusterJson(TypedDict):
    cluster: str
    breakers: int
    instances: int
    lastSecond: int


class BreakerPointJson(TypedDict):
    time: int
    requests: int
    errors: int
    errorPercentage: float
    rate: float
    counts: dict[str, int]
    latency: dict[str, float]
    maxConcurrency: int
    hosts: int
    openHosts: int


class BreakerHistoryJson(TypedDict):
    cluster: str
    name: str
    kind: str
    stepSeconds: int
    points: list[BreakerPointJson]


class QueryApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class QueryClient:
    def __init__(self, base_url: str, *, timeout: float = 10.0, token: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout, headers=headers)

    async def services(self) -> list[str]:
        return cast(list[str], (await self._get("/api/v1/services"))["services"])

    async def operations(self, service: str) -> list[OperationJson]:
        body = await self._get(f"/api/v1/services/{quote(service, safe='')}/operations")
        return cast(list[OperationJson], body["operations"])

    async def find_traces(self, params: Mapping[str, str | list[str]]) -> list[SummaryJson]:
        """`GET /api/v1/traces` with the given query parameters (names as the API has them)."""
        return cast(list[SummaryJson], (await self._get("/api/v1/traces", params))["traces"])

    async def dependencies(self, params: Mapping[str, str]) -> dict[str, Any]:
        """`GET /api/v1/dependencies`: `{"nodes": [{id, name, kind}], "edges": [...]}`."""
        return await self._get("/api/v1/dependencies", params)

    async def red(self, service: str, params: Mapping[str, str]) -> dict[str, Any]:
        """`GET /api/v1/metrics/red`: `{"stepSeconds", "points": [{startTimeUnixNano, rate, calls, errors,
        errorRate, p50Nano, p95Nano, p99Nano}]}` for the service's entry spans."""
        return await self._get("/api/v1/metrics/red", {"service": service, **params})

    async def operation_stats(self, service: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """`GET /api/v1/metrics/operations`: every operation of the service, busiest first."""
        body = await self._get("/api/v1/metrics/operations", {"service": service, **params})
        return cast(list[dict[str, Any]], body["operations"])

    async def attribute_keys(self, params: Mapping[str, str]) -> list[AttributeKeyJson]:
        """`GET /api/v1/attributes/keys`: span and resource attribute keys, most frequent first."""
        return cast(list[AttributeKeyJson], (await self._get("/api/v1/attributes/keys", params))["keys"])

    async def attribute_values(self, key: str, params: Mapping[str, str]) -> list[AttributeValueJson]:
        """`GET /api/v1/attributes/values`: values of `key` (``prefix`` in `params`), most frequent first."""
        body = await self._get("/api/v1/attributes/values", {**params, "key": key})
        return cast(list[AttributeValueJson], body["values"])

    async def trace(self, trace_id: str) -> TraceJson | None:
        """The trace, or None when the API does not know it (404)."""
        try:
            # dots too: "." and ".." are path segments an HTTP client resolves away
            path = quote(trace_id, safe="").replace(".", "%2E")
            return cast(TraceJson, await self._get(f"/api/v1/traces/{path}"))
        except QueryApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def breakers(self, cluster: str | None, window: str = "10s") -> BreakersJson:
        """`GET /api/v1/breakers`: every breaker and thread pool of `cluster` (None: all) over `window`."""
        params = {"window": window} if cluster is None else {"window": window, "cluster": cluster}
        return cast(BreakersJson, await self._get("/api/v1/breakers", params))

    async def breaker_clusters(self, window: str = "1h") -> list[BreakerClusterJson]:
        """`GET /api/v1/breakers/clusters`: clusters that reported breaker stats within `window`."""
        body = await self._get("/api/v1/breakers/clusters", {"window": window})
        return cast(list[BreakerClusterJson], body["clusters"])

    async def breaker_history(
        self, cluster: str, name: str, *, kind: str = "command", start_us: int, end_us: int, step: str
    ) -> BreakerHistoryJson:
        """`GET /api/v1/breakers/{name}/history`: sums per step, oldest first; empty steps absent."""
        params = {"cluster": cluster, "kind": kind, "start": str(start_us), "end": str(end_us), "step": step}
        body = await self._get(f"/api/v1/breakers/{quote(name, safe='')}/history", params)
        return cast(BreakerHistoryJson, body)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _get(self, path: str, params: Mapping[str, str | list[str]] | None = None) -> dict[str, Any]:
        try:
            response = await self._http.get(path, params=params)
        except httpx.TransportError as exc:
            raise QueryApiError(503, f"query API unreachable: {exc}") from exc
        if response.status_code != 200:
            raise QueryApiError(response.status_code, _error_message(response))
        return cast(dict[str, Any], response.json())


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]
