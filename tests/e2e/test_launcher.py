"""End to end: ``tracehouse-run`` traces a program that has no Tracehouse code at all.

A real HTTP server in the test stands in for the collector's OTLP/HTTP endpoint; the program
runs in a real child process through the launcher and the real OTLP exporter.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

pytestmark = pytest.mark.e2e

SPAN_NAME = "zero-code-span"

# Uses the OpenTelemetry API only: tracing is set up by the launcher, not by the program.
SCRIPT = f"""
import json, sys
from opentelemetry import baggage, context, propagate, trace

context.attach(baggage.set_baggage("tenant", "acme"))
with trace.get_tracer("e2e").start_as_current_span({SPAN_NAME!r}) as span:
    span.set_attribute("argv", " ".join(sys.argv[1:]))
    carrier = {{}}
    propagate.inject(carrier)
print(json.dumps(sorted(carrier)))
"""


@dataclass
class Received:
    """What the fake collector got: decoded export requests and their HTTP headers (lower-cased)."""

    requests: list[ExportTraceServiceRequest] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    span_arrived: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, request: ExportTraceServiceRequest, headers: dict[str, str]) -> None:
        with self.lock:
            self.requests.append(request)
            self.headers.append(headers)
        if any(span.name == SPAN_NAME for _, span in spans(request)):
            self.span_arrived.set()


@dataclass
class Collector:
    url: str
    received: Received


def spans(request: ExportTraceServiceRequest) -> Iterator[tuple[dict[str, str], Span]]:
    """(resource attributes, span) for every span of an export request."""
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield resource, span


def attributes(pairs: Iterable[KeyValue]) -> dict[str, str]:
    return {kv.key: kv.value.string_value or str(kv.value.int_value) for kv in pairs}


def make_handler(received: Received) -> type[BaseHTTPRequestHandler]:
    class OtlpHandler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path != "/v1/traces":
                self.send_error(404)
                return
            headers = {name.lower(): value for name, value in self.headers.items()}
            received.add(ExportTraceServiceRequest.FromString(body), headers)
            reply = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return OtlpHandler


@pytest.fixture
def collector() -> Iterator[Collector]:
    received = Received()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(received))
    thread = threading.Thread(target=server.serve_forever, name="fake-otlp", daemon=True)
    thread.start()
    try:
        yield Collector(f"http://127.0.0.1:{server.server_address[1]}", received)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "app.py"
    path.write_text(SCRIPT)
    return path


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACEHOUSE_"))}
    env["TRACEHOUSE_TOKEN"] = "e2e-token"
    return env


def launcher_command() -> list[str]:
    executable = Path(sys.executable).parent / "tracehouse-run"
    assert executable.is_file(), f"{executable} missing: install tracehouse into this environment"
    return [str(executable)]


LAUNCHERS: dict[str, Callable[[], list[str]]] = {
    "console-script": launcher_command,
    "python-m": lambda: [sys.executable, "-m", "tracehouse.instrumentation"],
}


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_launcher_traces_an_uninstrumented_program(launcher: str, collector: Collector, script: Path) -> None:
    command = [
        *LAUNCHERS[launcher](),
        "--service-name",
        "x",
        "--endpoint",
        collector.url,
        "--",
        sys.executable,
        str(script),
        "--service-name",
        "belongs-to-the-app",
    ]
    result = subprocess.run(command, env=child_env(), capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr

    # The child flushes on exit, so the span has arrived by now; the wait only bounds a failure.
    assert collector.received.span_arrived.wait(timeout=30), result.stderr
    (resource, span) = next((r, s) for req in collector.received.requests for r, s in spans(req) if s.name == SPAN_NAME)
    assert resource["service.name"] == "x"
    assert resource["service.instance.id"].endswith(":" + resource["process.pid"])
    assert attributes(span.attributes)["argv"] == "--service-name belongs-to-the-app"
    assert collector.received.headers[0]["authorization"] == "Bearer e2e-token"

    # Our configurator ran in the child, with the Tracehouse propagators, not OTel's defaults.
    assert json.loads(result.stdout) == ["baggage", "traceparent", "x-b3-sampled", "x-b3-spanid", "x-b3-traceid"]
    # ... and quietly, though opentelemetry-distro's configurator (a dev dependency) is installed too
    assert "configurator" in {e.name for e in entry_points(group="opentelemetry_configurator")}
    assert "not loaded" not in result.stderr


def test_unknown_command_exits_127() -> None:
    result = subprocess.run(
        [*launcher_command(), "--", "tracehouse-e2e-no-such-command"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 127
    assert "command not found" in result.stderr


# Ends by SIGTERM before the batch processor's 5 s schedule: only a flush on SIGTERM saves the span.
SIGTERM_SCRIPT = f"""
import os, signal, time
from opentelemetry import trace
with trace.get_tracer("e2e").start_as_current_span({SPAN_NAME!r}):
    pass
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(60)
"""


def test_spans_are_flushed_when_the_program_gets_sigterm(collector: Collector, tmp_path: Path) -> None:
    script = tmp_path / "terminated.py"
    script.write_text(SIGTERM_SCRIPT)
    command = [*launcher_command(), "--service-name", "k8s-pod", "--endpoint", collector.url, "--"]
    result = subprocess.run(
        [*command, sys.executable, str(script)], env=child_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == -signal.SIGTERM, result.stderr
    assert collector.received.span_arrived.is_set(), result.stderr


# The program configures logging the usual way and logs; the launcher alone adds the ids.
LOGGING_SCRIPT = f"""
import logging
from opentelemetry import trace

logging.basicConfig(level=logging.INFO)
log = logging.getLogger("orders")
log.info("before the request")
with trace.get_tracer("e2e").start_as_current_span({SPAN_NAME!r}):
    log.info("handling the request")
"""


def test_log_lines_carry_the_ids_of_the_exported_span(collector: Collector, tmp_path: Path) -> None:
    script = tmp_path / "logs.py"
    script.write_text(LOGGING_SCRIPT)
    command = [*launcher_command(), "--service-name", "orders", "--endpoint", collector.url, "--sampler", "ratelimit"]
    result = subprocess.run(
        [*command, "--", sys.executable, str(script)], env=child_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert collector.received.span_arrived.wait(timeout=30), result.stderr
    span = next(s for req in collector.received.requests for _, s in spans(req) if s.name == SPAN_NAME)
    lines = result.stderr.splitlines()
    assert "INFO [orders,,] orders: before the request" in lines
    assert f"INFO [orders,{span.trace_id.hex()},{span.span_id.hex()}] orders: handling the request" in lines


def test_list_shows_active_and_missing_instrumentations() -> None:
    result = subprocess.run(
        [*launcher_command(), "--list"], env=child_env(), capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert ["fastapi", "active"] in [row[:2] for row in rows]
    assert ["httpx", "active"] in [row[:2] for row in rows]
    assert "Missing instrumentations for libraries that are installed:" in result.stdout
