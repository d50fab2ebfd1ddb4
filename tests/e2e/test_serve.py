"""End to end: `tracehouse serve` as a subprocess, spans exported by the real OpenTelemetry
SDK exporters (OTLP/HTTP protobuf, gzip, OTLP/gRPC), read back over the query API."""

from __future__ import annotations

import gzip
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.e2e.server import Server, start_server

pytestmark = pytest.mark.e2e


def make_trace(exporter: SpanExporter, service: str) -> str:
    """A three-span trace through the real SDK and `exporter`; returns its trace id."""
    provider = TracerProvider(resource=Resource.create({"service.name": service, "service.version": "1.2.3"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("e2e", "0.1")
    with tracer.start_as_current_span(
        "GET /checkout", kind=trace.SpanKind.SERVER, attributes={"http.status": 200}
    ) as root:
        root.add_event("validated", {"items": 3})
        with tracer.start_as_current_span("charge", kind=trace.SpanKind.CLIENT) as charge:
            charge.set_status(trace.Status(trace.StatusCode.ERROR, "card declined"))
        with tracer.start_as_current_span("persist", links=[trace.Link(charge.get_span_context())]):
            pass
    provider.shutdown()
    return format(root.get_span_context().trace_id, "032x")


def assert_trace(server: Server, trace_id: str, service: str) -> None:
    response = server.api(f"/api/v1/traces/{trace_id}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["spanCount"] == 3
    spans = {s["name"]: s for s in body["spans"]}
    assert body["spans"][0]["name"] == "GET /checkout"
    root, charge, persist = spans["GET /checkout"], spans["charge"], spans["persist"]
    assert root["parentSpanId"] is None
    assert charge["parentSpanId"] == root["spanId"] == persist["parentSpanId"]
    assert {s["serviceName"] for s in body["spans"]} == {service}
    assert root["resource"]["service.version"] == "1.2.3"
    assert (root["kind"], charge["kind"], persist["kind"]) == ("Server", "Client", "Internal")
    assert root["attributes"] == {"http.status": "200"}
    assert root["events"][0]["name"] == "validated"
    assert charge["status"] == {"code": "Error", "message": "card declined"}
    assert persist["links"][0]["spanId"] == charge["spanId"]
    assert root["scope"] == {"name": "e2e", "version": "0.1"}


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_otlp_http_exporter_round_trip(server: Server, compression: Compression) -> None:
    exporter = HttpExporter(endpoint=f"{server.otlp_http}/v1/traces", compression=compression)
    trace_id = make_trace(exporter, "web")
    assert_trace(server, trace_id, "web")
    assert "web" in server.api("/api/v1/services").json()["services"]
    operations = server.api("/api/v1/services/web/operations").json()["operations"]
    assert {"name": "GET /checkout", "spanKind": "Server", "spans": 1} in operations


def test_otlp_grpc_exporter_round_trip(server: Server) -> None:
    exporter = GrpcExporter(endpoint=server.otlp_grpc, insecure=True)
    trace_id = make_trace(exporter, "grpc-svc")
    assert_trace(server, trace_id, "grpc-svc")


def sdk_request_body() -> tuple[bytes, str]:
    memory = InMemorySpanExporter()
    trace_id = make_trace(memory, "raw")
    return encode_spans(memory.get_finished_spans()).SerializeToString(), trace_id


def post(server: Server, body: bytes, **headers: str) -> httpx.Response:
    headers.setdefault("content-type", "application/x-protobuf")
    return httpx.post(f"{server.otlp_http}/v1/traces", content=body, headers=headers, timeout=30)


def status_message(response: httpx.Response) -> str:
    status = Status()
    status.ParseFromString(response.content)
    return status.message


def test_bad_requests_get_precise_answers(server: Server) -> None:
    garbage = post(server, b"\xff\xfe\xfd")
    assert garbage.status_code == 400
    assert "not a protobuf ExportTraceServiceRequest" in status_message(garbage)

    wrong_type = post(server, b"hello", **{"content-type": "text/plain"})
    assert wrong_type.status_code == 415
    assert "'text/plain' is not supported" in status_message(wrong_type)

    bomb = post(server, gzip.compress(bytes(64 * 1024 * 1024)), **{"content-encoding": "gzip"})
    assert bomb.status_code == 413
    assert "decompressed body is larger" in status_message(bomb)

    bad_json = post(server, b"{nope", **{"content-type": "application/json"})
    assert bad_json.status_code == 400
    assert "not valid JSON" in bad_json.json()["message"]

    # the server is still fine and takes good spans after all that
    body, trace_id = sdk_request_body()
    assert post(server, body).status_code == 200
    assert server.api(f"/api/v1/traces/{trace_id}").json()["spanCount"] == 3


def test_partial_success_keeps_the_good_spans(server: Server) -> None:
    body, trace_id = sdk_request_body()

    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = request.resource_spans[0].scope_spans[0].spans
    broken = spans.add()
    broken.CopyFrom(spans[0])
    broken.span_id = bytes(8)
    response = post(server, request.SerializeToString())
    assert response.status_code == 200
    answer = ExportTraceServiceResponse()
    answer.ParseFromString(response.content)
    assert answer.partial_success.rejected_spans == 1
    assert "span_id must be 8 bytes" in answer.partial_success.error_message
    assert server.api(f"/api/v1/traces/{trace_id}").json()["spanCount"] == 3


def test_query_api_errors(server: Server) -> None:
    malformed = server.api("/api/v1/traces/not-a-trace-id")
    assert malformed.status_code == 400
    assert "malformed" in malformed.json()["error"]["message"]
    unknown = server.api("/api/v1/traces/" + "ab" * 16)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["message"] == f"trace {'ab' * 16} not found"
    health = server.api("/healthz").json()
    assert health["status"] == "ok"
    assert health["schemaVersion"] >= 3


def test_second_serve_on_the_same_directory_fails_clearly(server: Server, tmp_path: Path) -> None:
    second = subprocess.run(
        [
            sys.executable,
            "-m",
            "tracehouse",
            "serve",
            "--data-dir",
            str(tmp_path / "data"),
            "--ui-port",
            "0",
            "--otlp-http-port",
            "0",
            "--zipkin-port",
            "0",
            "--otlp-grpc-port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert second.returncode == 1
    assert str((tmp_path / "data").resolve()) in second.stderr
    assert f"pid {server.proc.pid}" in second.stderr
    assert "Traceback" not in second.stderr
    assert "Cannot lock file" not in second.stderr


@pytest.mark.parametrize("flag", ["--ui-port", "--otlp-http-port", "--zipkin-port", "--otlp-grpc-port"])
def test_a_busy_port_fails_before_the_store_is_created(server: Server, tmp_path: Path, flag: str) -> None:
    """A port the running server holds: refused with the flag to change, and no store left behind
    in the new data directory (it was created and migrated first, then the port failed)."""
    held = {"--ui-port": server.ui, "--otlp-http-port": server.otlp_http, "--zipkin-port": server.zipkin,
            "--otlp-grpc-port": server.otlp_grpc}  # fmt: skip
    busy = held[flag].rsplit(":", 1)[1]
    data = tmp_path / "another"
    ports = {name: "0" for name in held} | {flag: busy}
    command = [sys.executable, "-m", "tracehouse", "serve", "--data-dir", str(data),
               *(part for pair in ports.items() for part in pair)]  # fmt: skip
    second = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert second.returncode == 2, second.stderr
    assert f"cannot listen on 127.0.0.1:{busy}" in second.stderr
    assert flag in second.stderr
    assert not (data / "clickhouse").exists()


def test_sigterm_flushes_queued_spans(tmp_path: Path) -> None:
    """A request waiting in the queue (long flush interval) is stored and answered when
    the server is told to stop; after a restart on the same directory the trace is there."""
    data = tmp_path / "data"
    server = start_server(data, "--flush-interval", "60")
    body, trace_id = sdk_request_body()
    answers: list[Any] = []
    sender = threading.Thread(target=lambda: answers.append(post(server, body)))
    sender.start()
    while server.api("/healthz").json()["queuedSpans"] == 0:
        assert sender.is_alive(), "the request was answered before it could be queued"
    assert server.stop(signal.SIGTERM) == 0
    sender.join(60)
    assert answers[0].status_code == 200
    assert "stopped; 3 spans stored" in server.text()

    restarted = start_server(data)
    try:
        assert restarted.api(f"/api/v1/traces/{trace_id}").json()["spanCount"] == 3
    finally:
        restarted.stop()


def test_ingest_token_is_required_when_set(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "--ingest-token", "s3cret-token")
    try:
        body, trace_id = sdk_request_body()
        missing = post(server, body)
        assert missing.status_code == 401
        assert "requires an ingest token" in status_message(missing)
        wrong = post(server, body, authorization="Bearer nope")
        assert wrong.status_code == 401
        assert "s3cret" not in wrong.text
        assert post(server, body, authorization="Bearer s3cret-token").status_code == 200

        # the real exporters with the token as a header
        http = HttpExporter(endpoint=f"{server.otlp_http}/v1/traces", headers={"Authorization": "Bearer s3cret-token"})
        assert_trace(server, make_trace(http, "with-token"), "with-token")
        grpc_ok = GrpcExporter(
            endpoint=server.otlp_grpc, insecure=True, headers={"authorization": "Bearer s3cret-token"}
        )
        assert_trace(server, make_trace(grpc_ok, "grpc-token"), "grpc-token")
        grpc_denied = GrpcExporter(endpoint=server.otlp_grpc, insecure=True, timeout=5)
        denied_id = make_trace(grpc_denied, "grpc-denied")
        assert server.api(f"/api/v1/traces/{denied_id}").status_code == 404
        assert server.api(f"/api/v1/traces/{trace_id}").json()["spanCount"] == 3
    finally:
        server.stop()
    assert "s3cret-token" not in server.text()


def test_the_embedded_engine_runs_within_its_memory_limit(server: Server, tmp_path: Path) -> None:
    """--store-memory-limit reaches the engine (768 MiB by default)."""
    assert server.api("/healthz").json()["storeMemoryLimitBytes"] == 768 * 1024**2
    limited = start_server(tmp_path / "limited", "--store-memory-limit", str(400 * 1024 * 1024))
    try:
        assert limited.api("/healthz").json()["storeMemoryLimitBytes"] == 400 * 1024 * 1024
    finally:
        limited.stop()


def test_zipkin_exporter_round_trip(server: Server) -> None:
    """OpenTelemetry's own Zipkin v2 JSON exporter (what a Zipkin-speaking service sends)."""
    from opentelemetry.exporter.zipkin.json import ZipkinExporter

    trace_id = make_trace(ZipkinExporter(endpoint=f"{server.zipkin}/api/v2/spans"), "zipkin-svc")
    body = server.api(f"/api/v1/traces/{trace_id}").json()
    spans = {s["name"]: s for s in body["spans"]}
    assert body["spanCount"] == 3
    assert {s["serviceName"] for s in body["spans"]} == {"zipkin-svc"}
    root, charge = spans["GET /checkout"], spans["charge"]
    assert root["parentSpanId"] is None
    assert charge["parentSpanId"] == root["spanId"] == spans["persist"]["parentSpanId"]
    assert (root["kind"], charge["kind"]) == ("Server", "Client")
    assert charge["status"]["code"] == "Error"
    # OTel encodes an event as the annotation value {"name": {attributes}}; it arrives as is
    assert root["events"][0]["name"] == '{"validated": {"items": 3}}'


def test_metrics_count_what_happened(server: Server) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    body, _ = sdk_request_body()
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = request.resource_spans[0].scope_spans[0].spans
    spans.add().CopyFrom(spans[0])
    spans[-1].trace_id = b"bad"
    assert post(server, request.SerializeToString()).status_code == 200  # 3 accepted, 1 rejected
    assert post(server, b"\xff garbage").status_code == 400

    def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = httpx.get(f"{server.otlp_http}/metrics", timeout=10).text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    deadline = time.monotonic() + 30
    while (samples := scrape()).get(("tracehouse_linker_runs_total", (("outcome", "linked"),)), 0) < 1:
        assert time.monotonic() < deadline, "the dependency linker's first run (at start) was never counted"
        time.sleep(0.05)
    otlp = (("protocol", "otlp_http"),)
    assert samples[("tracehouse_ingest_spans_accepted_total", otlp)] == 3
    assert samples[("tracehouse_ingest_spans_received_total", otlp)] == 4
    invalid = (("protocol", "otlp_http"), ("reason", "invalid"))
    assert samples[("tracehouse_ingest_spans_rejected_total", invalid)] == 1
    assert samples[("tracehouse_ingest_requests_refused_total", (("protocol", "otlp_http"), ("status", "400")))] == 1
    assert samples[("tracehouse_stored_spans", ())] == 3
    assert samples[("tracehouse_queue_spans", ())] == 0
    assert samples[("tracehouse_spool_batches", ())] == 0
    assert samples[("tracehouse_flush_seconds_count", ())] >= 1


def test_trace_search(server: Server) -> None:
    exporter = HttpExporter(endpoint=f"{server.otlp_http}/v1/traces")
    first = make_trace(exporter, "search-a")
    second = make_trace(HttpExporter(endpoint=f"{server.otlp_http}/v1/traces"), "search-b")
    everything = server.api("/api/v1/traces?limit=10").json()["traces"]
    assert [t["traceId"] for t in everything][:2] == [second, first]  # newest first
    only_a = server.api("/api/v1/traces?service=search-a").json()["traces"]
    assert [(t["traceId"], t["rootService"], t["rootOperation"], t["spanCount"], t["errorCount"]) for t in only_a] == [
        (first, "search-a", "GET /checkout", 3, 1)
    ]
    assert only_a[0]["services"] == [{"name": "search-a", "spans": 3}]
    by_attr = server.api("/api/v1/traces", params={"attr": ["http.status=200", "service.version=~^1\\."]}).json()
    assert {t["traceId"] for t in by_attr["traces"]} == {first, second}
    assert (
        server.api("/api/v1/traces?service=search-b&error=true&operation=charge").json()["traces"][0]["traceId"]
        == second
    )
    assert server.api("/api/v1/traces?service=search-b&minDuration=1h").json()["traces"] == []
    bad = server.api("/api/v1/traces?minDuration=soon")
    assert bad.status_code == 400
    assert bad.json()["error"]["message"].startswith("minDuration: 'soon' is not a duration")
    regex = server.api("/api/v1/traces", params={"attr": "http.status=~(unclosed"})
    assert regex.status_code == 400
    assert "cannot evaluate" in regex.json()["error"]["message"]


def test_a_body_still_coming_at_sigterm_is_answered_503_not_cancelled_with_a_traceback(tmp_path: Path) -> None:
    # uvicorn waited 5 s for such a request, then cancelled it and logged a traceback per request.
    server = start_server(tmp_path / "data")
    host, port = server.otlp_http.removeprefix("http://").rsplit(":", 1)
    dripping = socket.create_connection((host, int(port)))
    dripping.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                     b"Content-Length: 1000\r\n\r\n\x0a")  # fmt: skip
    try:
        metrics = f"{server.otlp_http.removesuffix('/v1/traces')}/metrics"
        while "tracehouse_ingest_bytes_held 1.0" not in httpx.get(metrics).text:  # its first body byte is in
            pass
        assert server.stop(signal.SIGTERM) == 0
        dripping.settimeout(30)
        answer = dripping.recv(4096)
    finally:
        dripping.close()
    assert answer.startswith(b"HTTP/1.1 503"), answer
    assert b"shutting down" in answer
    assert "Traceback" not in server.text()
    assert "timeout graceful shutdown exceeded" not in server.text()
