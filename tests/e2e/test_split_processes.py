"""The code of `tracehouse collector` and `tracehouse query` as real processes on every machine:
`schema apply`, then a collector (OTLP/HTTP, OTLP/gRPC, Zipkin, breaker stats, /healthz), stopped by
SIGTERM, then a query process with its API token reading what the collector stored. They take
turns on one embedded store (`split_half.py`; the CLI refuses that) since a ClickHouse server is
only there with Docker (tests/e2e/test_distributed.py runs them side by side on one)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

from tests.e2e.server import Server, start_tracehouse
from tests.e2e.test_serve import assert_trace, make_trace
from tracehouse.storage.migrate import latest_version

pytestmark = pytest.mark.e2e

HALF = [sys.executable, str(Path(__file__).with_name("split_half.py"))]
TOKEN = "query-secret-789"


class WithToken(Server):
    def api(self, path: str, params: dict[str, str | list[str]] | None = None) -> httpx.Response:
        return httpx.get(f"{self.ui}{path}", params=params, headers={"authorization": f"Bearer {TOKEN}"}, timeout=30)


def test_collector_then_query_processes(tmp_path: Path) -> None:
    dsn = f"chdb://{tmp_path / 'clickhouse'}"
    applied = subprocess.run(
        [sys.executable, "-m", "tracehouse", "schema", "apply", "--clickhouse", dsn],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert applied.returncode == 0, applied.stderr

    collector = start_tracehouse(
        "collector", "--clickhouse", dsn, "--data-dir", str(tmp_path / "spool"), "--otlp-http-port", "0",
        "--otlp-grpc-port", "0", "--zipkin-port", "0", "--flush-interval", "0.05", launcher=HALF,
    )  # fmt: skip
    try:
        assert "Tracehouse collector is ready" in collector.text()
        assert not collector.ui  # no API or UI in a collector
        by_http = make_trace(HttpExporter(endpoint=f"{collector.otlp_http}/v1/traces"), "web")
        by_grpc = make_trace(GrpcExporter(endpoint=collector.otlp_grpc, insecure=True), "worker")
        zipkin = [{"traceId": "5af7183fb1d4cf5f", "id": "352bff9a74ca9ad2", "name": "get /zipkin",
                   "timestamp": time.time_ns() // 1000, "duration": 1500, "kind": "SERVER",
                   "localEndpoint": {"serviceName": "legacy"}}]  # fmt: skip
        assert httpx.post(f"{collector.zipkin}/api/v2/spans", json=zipkin, timeout=30).status_code == 202
        second = int(time.time())
        report = {"service": "web", "instance": "web-1:80", "cluster": "shop", "samples": [
            {"kind": "command", "name": "web.charge", "group": "payments", "second": second,
             "counts": {"success": 7, "failure": 1}},
        ]}  # fmt: skip
        stored = httpx.post(f"{collector.otlp_http}/v1/breakers", json=report, timeout=30)
        assert stored.status_code == 200, stored.text
        health = httpx.get(f"{collector.otlp_http}/healthz", timeout=10).json()
        assert health["status"] == "ok"
        assert health["schemaVersion"] == latest_version()
        assert health["storedSpans"] == 7  # answered only once stored
        assert httpx.get(f"{collector.otlp_http}/api/v1/services", timeout=10).status_code == 404
    finally:
        assert collector.stop() == 0, collector.text()
    assert "stopped; 7 spans stored since start" in collector.text()

    query = start_tracehouse("query", "--clickhouse", dsn, "--ui-port", "0", "--api-token", TOKEN, launcher=HALF)
    try:
        assert "Tracehouse query API is ready" in query.text()
        assert not query.otlp_http  # no receivers in a query process
        assert httpx.get(f"{query.ui}/api/v1/services", timeout=10).status_code == 401
        auth = {"authorization": f"Bearer {TOKEN}"}
        authorised = WithToken(query.proc, ui=query.ui)
        for trace_id, service in ((by_http, "web"), (by_grpc, "worker")):
            assert_trace(authorised, trace_id, service)
        assert {"web", "worker", "legacy"} <= set(authorised.api("/api/v1/services").json()["services"])
        assert authorised.api("/healthz").json()["schemaVersion"] == latest_version()
        breakers = authorised.api("/api/v1/breakers", {"cluster": "shop", "window": "10m"}).json()["breakers"]
        (charge,) = [b for b in breakers if b["name"] == "web.charge"]
        assert (charge["requests"], charge["errors"], charge["hosts"]) == (8, 1, 1)
        page = httpx.get(f"{query.ui}/", headers=auth, timeout=30)
        assert page.status_code == 200
        assert "Tracehouse" in page.text
    finally:
        assert query.stop() == 0, query.text()
