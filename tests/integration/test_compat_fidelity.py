"""What Zipkin Lens, jaeger-ui and Grafana's data sources rely on beyond the shapes
(test_api_golden.py): spans sent as Brave sends them come back as they were sent, searches find
what the real servers find, and errors come in each API's own form. The real query app over the
real store (ASGI, no socket), spans through the real Zipkin decoder."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from fastapi import FastAPI

from tests.integration.test_api_golden import Get, asgi_get
from tracehouse.collector.zipkin import decode_zipkin_json
from tracehouse.query import build_query_app
from tracehouse.storage import ClickHouseStore

pytestmark = pytest.mark.integration

NOW_US = time.time_ns() // 1000 - 60_000_000
RPC = "463ac35c9f6413ad"  # a 64-bit trace: frontend -> backend as one shared span, backend -> mysql
RPC_ID = "a000000000000002"
PADDED = "00c0ffee0000abcd"  # a trace id with leading zeros, which senders may drop


def _span(trace: str, span: str, parent: str | None, kind: str | None, service: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"traceId": trace, "id": span, "name": "get /api", "timestamp": NOW_US, "duration": 2000,
                            "localEndpoint": {"serviceName": service}, **extra}  # fmt: skip
    body.update({"parentId": parent} if parent else {})
    body.update({"kind": kind} if kind else {})
    return body


SPANS = [
    _span(RPC, "a000000000000001", None, "SERVER", "Frontend",
          localEndpoint={"serviceName": "Frontend", "ipv4": "192.168.99.1", "port": 8081}),
    _span(RPC, RPC_ID, "a000000000000001", "CLIENT", "Frontend",
          remoteEndpoint={"serviceName": "backend", "ipv6": "2001:db8::c001", "port": 9000}),
    _span(RPC, RPC_ID, "a000000000000001", "SERVER", "backend", shared=True,
          annotations=[{"timestamp": NOW_US + 10, "value": "cache.miss"}]),
    # an error by its status alone (no `error` tag): shown with the tag `error`, found by it
    _span(RPC, "a000000000000003", RPC_ID, "CLIENT", "backend", name="query", tags={"otel.status_code": "ERROR"},
          remoteEndpoint={"serviceName": "mysql"}),
    _span(RPC, "a000000000000004", RPC_ID, None, "backend", name="render"),
    # another trace, 128-bit, to tell a search that filters from one that returns everything
    _span("5af7183fb1d4cf5f463ac35c9f6413ae", "b000000000000001", None, "SERVER", "other", duration=90_000),
    _span(PADDED, "c000000000000001", None, "SERVER", "other"),
]  # fmt: skip


@pytest.fixture
def app(store: ClickHouseStore) -> FastAPI:
    decoded = decode_zipkin_json(json.dumps(SPANS).encode())
    assert decoded.rejected == 0
    store.write(decoded.batch)
    return build_query_app(store, dict)


@pytest.fixture
def get(app: FastAPI) -> Get:
    return asgi_get(app)


def test_a_brave_span_comes_back_with_its_endpoints(get: Get) -> None:
    by_kind = {(s["localEndpoint"]["serviceName"], s.get("kind")): s for s in get(f"/api/v2/trace/{RPC}", {}).json()}
    root, client = by_kind["Frontend", "SERVER"], by_kind["Frontend", "CLIENT"]
    assert root["localEndpoint"] == {"serviceName": "Frontend", "ipv4": "192.168.99.1", "port": 8081}
    assert client["remoteEndpoint"] == {"serviceName": "backend", "ipv6": "2001:db8::c001", "port": 9000}
    assert by_kind["backend", "SERVER"]["shared"] is True
    assert "zipkin.shared" not in by_kind["backend", "SERVER"]["tags"]


@pytest.mark.parametrize("written", ["c0ffee0000abcd", "0c0ffee0000ABCD", "0000000000000000" + PADDED])
def test_a_trace_id_without_its_leading_zeros_is_found(get: Get, written: str) -> None:
    """Zipkin and Jaeger left-pad a short id, as the Zipkin receiver pads one it stores."""
    (span,) = get(f"/api/v2/trace/{written}", {}).json()
    assert span["traceId"] == PADDED
    (trace,) = get(f"/api/traces/{written}", {}).json()["data"]
    assert trace["traceID"] == PADDED


def _zipkin_search(get: Get, **params: str) -> list[str]:
    return sorted(trace[0]["traceId"] for trace in get("/api/v2/traces", params).json())


def test_zipkin_searches_as_zipkin_does(get: Get) -> None:
    assert _zipkin_search(get, serviceName="frontend") == [RPC]  # names compared without case
    assert _zipkin_search(get, serviceName="BACKEND", spanName="QUERY") == [RPC]
    assert _zipkin_search(get, annotationQuery="cache.miss") == [RPC]  # a bare word: an annotation too
    assert _zipkin_search(get, annotationQuery="error=true") == [RPC]  # the error tag as shown
    assert _zipkin_search(get, annotationQuery="no.such.thing") == []
    assert _zipkin_search(get, limit="5000") == sorted([RPC, PADDED, "5af7183fb1d4cf5f463ac35c9f6413ae"])
    refused = get("/api/v2/traces", {"minDuration": "5000", "maxDuration": "10"})
    assert refused.status_code == 400
    assert "minDuration" in refused.text


def test_jaeger_shows_a_shared_rpc_as_two_spans_parent_and_child(get: Get) -> None:
    """Jaeger's span-id deduper: the server half gets an id of its own, under the client half,
    and the callee's spans below the shared id follow it."""
    (trace,) = get(f"/api/traces/{RPC}", {}).json()["data"]
    assert trace["traceID"] == RPC  # a 64-bit id in 16 characters, as Jaeger prints it
    processes = {pid: p["serviceName"] for pid, p in trace["processes"].items()}
    spans = {(processes[s["processID"]], s["operationName"], _kind(s)): s for s in trace["spans"]}
    client, server = spans["Frontend", "get /api", "client"], spans["backend", "get /api", "server"]
    assert len({s["spanID"] for s in trace["spans"]}) == len(trace["spans"])
    assert client["spanID"] == RPC_ID
    assert server["references"] == [{"refType": "CHILD_OF", "traceID": RPC, "spanID": RPC_ID}]
    for below in (spans["backend", "query", "client"], spans["backend", "render", None]):
        assert below["references"][0]["spanID"] == server["spanID"]
    assert not [t for s in trace["spans"] for t in s["tags"] if t["key"].startswith("zipkin.")]


def _kind(span: dict[str, Any]) -> str | None:
    return next((t["value"] for t in span["tags"] if t["key"] == "span.kind"), None)


def test_jaeger_search_by_trace_ids_and_older_tag_form(get: Get) -> None:
    def found(params: dict[str, Any]) -> list[str]:
        return sorted(t["traceID"] for t in get("/api/traces", params).json()["data"])

    assert found({"traceID": [RPC, "5af7183fb1d4cf5f463ac35c9f6413ae"]}) == sorted(
        [RPC, "5af7183fb1d4cf5f463ac35c9f6413ae"]
    )
    assert found({"traceID": RPC, "service": "other"}) == [RPC]  # the ids alone decide, as in jaeger-query
    assert found({"service": "backend", "tag": "error:true"}) == [RPC]
    assert found({"service": "other", "tag": "error:true"}) == []
    assert found({"minDuration": "1m30s"}) == []
    assert found({"minDuration": "50ms", "lookback": "1h"}) == ["5af7183fb1d4cf5f463ac35c9f6413ae"]


@pytest.mark.parametrize(
    ("path", "params", "status", "complaint"),
    [("/api/traces/zz", {}, 400, "zz"), ("/api/traces", {"tags": "notjson"}, 400, "tags"),
     ("/api/traces", {"minDuration": "soon"}, 400, "minDuration"), ("/api/operations", {}, 400, "service"),
     ("/api/dependencies", {}, 400, "endTs"), ("/api/traces", {"minDuration": "2s", "maxDuration": "1s"}, 400, "max"),
     ("/api/metrics/latencies", {"service": "backend"}, 501, "disabled")],
)  # fmt: skip
def test_jaeger_errors_come_in_jaegers_envelope(
    get: Get, path: str, params: dict[str, str], status: int, complaint: str
) -> None:
    answer = get(path, params)
    assert answer.status_code == status
    body = answer.json()
    assert set(body) == {"data", "total", "limit", "offset", "errors"}
    assert body["data"] is None
    (error,) = body["errors"]
    assert error["code"] == status
    assert complaint in error["msg"]
