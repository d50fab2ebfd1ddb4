"""The Zipkin v2 and Jaeger read APIs, checked field by field against the shapes in
../shared/reference/query-apis.md, on a trace exported by the real OpenTelemetry SDK."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

from tests.e2e.server import Server, start_server
from tests.e2e.test_serve import make_trace

pytestmark = pytest.mark.e2e


@pytest.fixture
def traced(server: Server) -> str:
    return make_trace(OTLPSpanExporter(endpoint=f"{server.otlp_http}/v1/traces"), "shop")


def test_zipkin_read_api(server: Server, traced: str) -> None:
    assert "shop" in server.api("/api/v2/services").json()
    assert server.api("/api/v2/spans", {"serviceName": "shop"}).json() == ["GET /checkout", "charge", "persist"]
    (trace,) = server.api("/api/v2/traces", {"serviceName": "shop", "limit": "5"}).json()
    spans = {s["name"]: s for s in trace}
    root, charge = spans["GET /checkout"], spans["charge"]
    assert root["traceId"] == traced
    assert len(root["id"]) == 16
    assert "parentId" not in root
    assert charge["parentId"] == root["id"]
    assert (root["kind"], charge["kind"]) == ("SERVER", "CLIENT")
    assert "kind" not in spans["persist"]  # internal spans have no Zipkin kind
    assert isinstance(root["timestamp"], int)
    assert root["timestamp"] > 1_700_000_000_000_000
    assert isinstance(root["duration"], int)
    assert root["duration"] >= 1
    assert root["localEndpoint"] == {"serviceName": "shop"}
    assert root["annotations"][0]["value"] == "validated"
    assert root["tags"] == {"http.status": "200"}
    assert charge["tags"]["error"] == "card declined"

    by_tag = server.api("/api/v2/traces", {"serviceName": "shop", "annotationQuery": "http.status=200"}).json()
    assert [t[0]["traceId"] for t in by_tag] == [traced]
    assert server.api("/api/v2/traces", {"serviceName": "shop", "minDuration": str(3_600 * 10**6)}).json() == []
    assert len(server.api(f"/api/v2/trace/{traced}").json()) == 3
    missing = server.api(f"/api/v2/trace/{'a' * 32}")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/plain")
    assert server.api("/api/v2/traceMany", {"traceIds": traced}).status_code == 400
    assert [len(t) for t in server.api("/api/v2/traceMany", {"traceIds": f"{traced},{'b' * 32}"}).json()] == [3]
    # a Zipkin server answers reads on its own port too
    assert len(httpx.get(f"{server.zipkin}/api/v2/trace/{traced}", timeout=30).json()) == 3


def test_jaeger_api(server: Server, traced: str) -> None:
    body = server.api("/api/services").json()
    assert set(body) == {"data", "total", "limit", "offset", "errors"}
    assert "shop" in body["data"]
    assert server.api("/api/services/shop/operations").json()["data"] == ["GET /checkout", "charge", "persist"]
    assert server.api("/api/operations", {"service": "shop", "spanKind": "server"}).json()["data"] == [
        {"name": "GET /checkout", "spanKind": "server"}
    ]
    (trace,) = server.api("/api/traces", {"service": "shop", "tags": json.dumps({"http.status": "200"})}).json()["data"]
    assert trace["traceID"] == traced
    assert trace["processes"] == {"p1": {"serviceName": "shop", "tags": [t for t in trace["processes"]["p1"]["tags"]]}}
    assert {"key": "service.version", "type": "string", "value": "1.2.3"} in trace["processes"]["p1"]["tags"]
    spans = {s["operationName"]: s for s in trace["spans"]}
    root, charge = spans["GET /checkout"], spans["charge"]
    assert root["references"] == []
    assert charge["references"] == [{"refType": "CHILD_OF", "traceID": traced, "spanID": root["spanID"]}]
    assert isinstance(root["startTime"], int)
    assert isinstance(root["duration"], int)
    assert {"key": "span.kind", "type": "string", "value": "server"} in root["tags"]
    assert {"key": "error", "type": "bool", "value": True} in charge["tags"]
    assert root["logs"][0]["fields"][0] == {"key": "event", "type": "string", "value": "validated"}
    assert root["processID"] == "p1"
    by_id = server.api(f"/api/traces/{traced}").json()["data"]
    assert len(by_id[0]["spans"]) == 3
    missing = server.api(f"/api/traces/{'c' * 32}")
    assert missing.status_code == 404
    assert missing.json()["errors"] == [{"code": 404, "msg": "trace not found"}]
    assert server.api("/api/traces", {"service": "shop", "tags": "not json"}).status_code == 400


def test_zipkin_autocomplete(server: Server, traced: str) -> None:
    assert "http.status" in server.api("/api/v2/autocompleteKeys").json()
    assert server.api("/api/v2/autocompleteValues", {"key": "http.status"}).json() == ["200"]
    assert server.api("/api/v2/autocompleteValues", {"key": "nothing.here"}).json() == []
    assert server.api("/api/v2/remoteServices", {"serviceName": "shop"}).json() == []


def test_jaeger_v3_api(server: Server, traced: str) -> None:
    assert "shop" in server.api("/api/v3/services").json()["services"]
    assert server.api("/api/v3/operations", {"service": "shop", "spanKind": "server"}).json() == {
        "operations": [{"name": "GET /checkout", "spanKind": "server"}]
    }
    native = server.api(f"/api/v1/traces/{traced}").json()
    assert native["truncated"] is False
    assert {p["spanId"] for p in native["criticalPath"]} <= {s["spanId"] for s in native["spans"]}
    result = server.api(f"/api/v3/traces/{traced}").json()["result"]
    [resource_spans] = result["resourceSpans"]
    resource = {a["key"]: a["value"]["stringValue"] for a in resource_spans["resource"]["attributes"]}
    assert resource["service.name"] == "shop"
    spans = {s["name"]: s for scope in resource_spans["scopeSpans"] for s in scope["spans"]}
    root, charge = spans["GET /checkout"], spans["charge"]
    assert root["traceId"] == traced
    assert len(root["spanId"]) == 16
    assert "parentSpanId" not in root
    assert charge["parentSpanId"] == root["spanId"]
    assert (root["kind"], charge["kind"]) == (2, 3)  # SPAN_KIND_SERVER, SPAN_KIND_CLIENT
    assert charge["status"] == {"code": 2, "message": "card declined"}
    assert int(root["endTimeUnixNano"]) > int(root["startTimeUnixNano"]) > 1_700_000_000 * 10**9
    assert {"key": "http.status", "value": {"stringValue": "200"}} in root["attributes"]
    assert root["events"][0]["name"] == "validated"

    now = time.time()
    window = {
        "query.serviceName": "shop",
        "query.startTimeMin": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3600)),
        "query.startTimeMax": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 60)),
    }
    found = server.api("/api/v3/traces", {**window, "query.attributes": json.dumps({"http.status": "200"})}).json()
    assert {
        s["traceId"] for rs in found["result"]["resourceSpans"] for sc in rs["scopeSpans"] for s in sc["spans"]
    } == {traced}
    assert server.api("/api/v3/traces", {**window, "query.operationName": "nope"}).status_code == 404
    assert server.api("/api/v3/traces", {"query.serviceName": "shop"}).status_code == 400
    assert server.api(f"/api/v3/traces/{'d' * 32}").status_code == 404


def test_red_metrics(server: Server, traced: str) -> None:
    before = time.time()
    body = server.api("/api/v1/metrics/red", {"service": "shop", "step": "1m"}).json()
    after = time.time()
    assert body["stepSeconds"] == 60
    assert len(body["points"]) in (60, 61)  # the last hour, one point a minute
    busy = [p for p in body["points"] if p["calls"]]
    assert len(busy) == 1  # one server span: GET /checkout
    (point,) = busy
    assert (point["calls"], point["errors"], point["errorRate"]) == (1, 0, 0.0)
    start = int(point["startTimeUnixNano"]) / 1e9
    gone = [min(60.0, max(1.0, t - start)) for t in (before, after)]  # the minute may still be running
    assert 1 / gone[1] <= point["rate"] <= 1 / gone[0]
    assert point["p50Nano"] == point["p99Nano"] > 0
    empty = [p for p in body["points"] if not p["calls"]]
    assert {(p["rate"], p["errorRate"], p["p50Nano"], p["p99Nano"]) for p in empty} == {(0.0, None, None, None)}
    every_kind = server.api("/api/v1/metrics/red", {"service": "shop", "spanKind": "all", "step": "10s"}).json()
    assert sum(p["calls"] for p in every_kind["points"]) == 3
    assert sum(p["errors"] for p in every_kind["points"]) == 1
    too_fine = server.api("/api/v1/metrics/red", {"service": "shop", "step": "1s", "start": "2020-01-01T00:00:00Z"})
    assert too_fine.status_code == 400
    assert too_fine.json()["error"]["message"].startswith("step: 1s gives more than 2000 points")


def two_service_trace(server: Server) -> str:
    """front calls back: two processes' worth of SDK providers, joined by the span context."""
    from opentelemetry import trace as otel
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    providers = {}
    for name in ("front", "back"):
        provider = TracerProvider(resource=Resource.create({"service.name": name}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{server.otlp_http}/v1/traces")))
        providers[name] = provider
    front = providers["front"].get_tracer("t")
    with front.start_as_current_span("GET /", kind=otel.SpanKind.SERVER) as root:
        back = providers["back"].get_tracer("t")
        with (
            front.start_as_current_span("call back", kind=otel.SpanKind.CLIENT),
            back.start_as_current_span("handle", kind=otel.SpanKind.SERVER),
        ):
            pass
        with front.start_as_current_span("SELECT", kind=otel.SpanKind.CLIENT, attributes={"db.system": "sqlite"}):
            pass
    for provider in providers.values():
        provider.shutdown()
    return format(root.get_span_context().trace_id, "032x")


def test_dependencies(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "--link-interval", "0.2")
    try:
        two_service_trace(server)
        deadline = time.monotonic() + 60
        graph: dict[str, Any] = {}
        while time.monotonic() < deadline and len(graph.get("edges", [])) < 2:
            graph = server.api("/api/v1/dependencies").json()  # the linker runs every 0.2 s
        assert {"id": "front", "name": "front", "kind": "service"} in graph["nodes"]
        assert {"id": "sqlite", "name": "sqlite", "kind": "database"} in graph["nodes"]
        edges = {(e["parent"], e["child"]): e for e in graph["edges"]}
        assert set(edges) == {("front", "back"), ("front", "sqlite")}
        assert (edges[("front", "back")]["calls"], edges[("front", "back")]["errors"]) == (1, 0)
        assert edges[("front", "back")]["p99Nano"] > 0
        end_ms = str(int(time.time() * 1000) + 60_000)
        zipkin = server.api("/api/v2/dependencies", {"endTs": end_ms}).json()
        assert {"parent": "front", "child": "back", "callCount": 1, "errorCount": 0} in zipkin
        jaeger = server.api("/api/dependencies", {"endTs": end_ms}).json()["data"]
        assert {"parent": "front", "child": "back", "callCount": 1} in jaeger
    finally:
        server.stop()


def test_bad_parameters_are_json_400s_and_unknown_paths_json_404s(server: Server, traced: str) -> None:
    for path, params in [
        ("/api/v1/traces", {"limit": "abc"}),
        ("/api/v1/traces", {"start": "²"}),
        ("/api/v1/traces", {"minDuration": "9" * 400 + "ms"}),
        ("/api/v2/spans", {}),
        ("/api/v2/traces", {"endTs": "abc"}),
        ("/api/traces", {"service": "shop", "tags": '{"flag": true}'}),
    ]:
        response = server.api(path, params)
        assert response.status_code == 400, (path, params, response.text)
        body = response.json()  # Jaeger's own API: its envelope, as jaeger-ui reads errors
        assert body["errors"][0]["msg"] if path == "/api/traces" else body["error"]["message"]
    for path in ("/api/v4/traces", "/api/v1/nothing", "/api/nothing/here"):
        missing = server.api(path)
        assert missing.status_code == 404
        assert missing.json()["error"]["message"].startswith("no such API endpoint")
    assert server.api("/api/v1/services/a%2Fb/operations").json()["operations"] == []
    assert server.api("/api/v2/traces", {"serviceName": "shop", "remoteServiceName": "nobody"}).json() == []
    assert len(server.api("/api/v2/traces", {"serviceName": "shop", "annotationQuery": "error"}).json()) == 1
    assert len(server.api("/api/traces", {"service": "shop", "tags": '{"error":"true"}'}).json()["data"]) == 1


def test_the_api_docs_need_no_internet(server: Server) -> None:
    """/docs and /redoc load their scripts and styles from the server itself: a self-hosted backend
    may have no route to a CDN (the default FastAPI pages were blank offline)."""
    for page in ("/docs", "/redoc"):
        html = server.api(page).text
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert any(a.endswith(".js") for a in assets), html
        for asset in assets:
            assert asset.startswith("/"), (page, asset)  # same origin
            answer = server.api(asset)
            assert answer.status_code == 200, asset
            assert len(answer.content) > 1000
    assert server.api("/openapi.json").json()["info"]["title"] == "Tracehouse query API"
