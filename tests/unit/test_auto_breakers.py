"""Auto-breakers from real SDK client spans: one metrics-only breaker per HTTP destination."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode

from tracehouse.instrumentation.breakers import Registry, State
from tracehouse.instrumentation.breakers.auto import AutoBreakerProcessor, AutoBreakers, destination
from tracehouse.instrumentation.breakers.window import Outcome


@pytest.fixture
def traced() -> Iterator[tuple[TracerProvider, Registry]]:
    registry = Registry()
    provider = TracerProvider()
    provider.add_span_processor(AutoBreakerProcessor(AutoBreakers(registry)))
    yield provider, registry
    provider.shutdown()


def test_client_spans_feed_one_breaker_per_destination(traced: tuple[TracerProvider, Registry]) -> None:
    provider, registry = traced
    tracer = provider.get_tracer("test")
    for status in (200, 200, 503):
        attrs = {"http.request.method": "GET", "server.address": "payments", "server.port": 8080}
        with tracer.start_as_current_span("GET", kind=SpanKind.CLIENT, attributes=attrs) as span:
            span.set_attribute("http.response.status_code", status)
    with tracer.start_as_current_span("POST", kind=SpanKind.CLIENT, attributes={"http.method": "POST"}) as span:
        span.set_attribute("http.url", "https://fraud.example/check")
        span.set_status(Status(StatusCode.ERROR))
    with tracer.start_as_current_span("GET /x", kind=SpanKind.SERVER, attributes={"http.method": "GET"}):
        pass  # a server span is not a dependency
    with tracer.start_as_current_span("query", kind=SpanKind.CLIENT, attributes={"db.system": "sqlite"}):
        pass  # not HTTP

    breakers = {b.name: b for b in registry.breakers()}
    assert set(breakers) == {"http:payments:8080", "http:fraud.example:443"}
    payments = breakers["http:payments:8080"]
    assert payments.state is State.METRICS_ONLY
    [bucket] = [b for b in payments.recent_buckets() if any(b.counts)]
    assert bucket.counts[Outcome.SUCCESS] == 2
    assert bucket.counts[Outcome.FAILURE] == 1
    assert sum(bucket.latency.values()) == 3
    [fraud] = [b for b in breakers["http:fraud.example:443"].recent_buckets() if any(b.counts)]
    assert fraud.counts[Outcome.FAILURE] == 1


def test_destination_of_span_attributes() -> None:
    assert destination({"http.method": "GET", "net.peer.name": "db", "net.peer.port": 5432}) == "db:5432"
    assert destination({"http.request.method": "GET", "url.full": "http://a.b/c"}) == "a.b:80"
    assert destination({"http.request.method": "GET"}) is None
    assert destination({"rpc.system": "grpc"}) is None


ENFORCED = """
import sys, threading, httpx, requests
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from tracehouse.instrumentation.breakers import CallNotPermitted, Registry
from tracehouse.instrumentation.breakers.auto import AutoBreakers
from tracehouse.instrumentation.breakers.auto_guard import guard_http_clients

class Failing(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(503); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Failing)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_address[1]}/"
registry = Registry()
print(sorted(guard_http_clients(AutoBreakers(registry, enforce=True))))
sent = refused = 0
for client in (httpx.get, requests.get):
    for _ in range(25):
        try:
            client(url); sent += 1
        except (httpx.TransportError, requests.ConnectionError) as exc:
            assert isinstance(exc, CallNotPermitted), exc
            refused += 1
print(sent, refused, [b.state.value for b in registry.breakers()])
server.shutdown()
"""


def test_enforcing_auto_breakers_refuse_calls_to_an_open_destination() -> None:
    # In a process of its own: the guard patches httpx and requests for the whole process.
    done = subprocess.run([sys.executable, "-c", ENFORCED], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    guarded, counts = done.stdout.splitlines()
    assert guarded == "['httpx', 'requests']"
    # 20 failing calls open the breaker (minimum 20 calls, 100 % errors); the other 30 never leave.
    assert counts == "20 30 ['OPEN']"
