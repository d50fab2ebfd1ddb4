"""Instrumentation under collector faults: a demo service run by `tracehouse-run` (FastAPI,
a breaker, the OTLP exporter and the breaker-stats reporter) keeps serving at its usual latency
while its collector is healthy, down (nothing listens), stalling (accepts, never answers) or
refusing (503 + Retry-After), and it still stops promptly on SIGTERM. The latencies measured
are printed for docs/reliability.md."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.reliability.harness import percentile
from tests.stand_in_collectors import down_collector, http_collector, stalling_collector
from tracehouse.demo.processes import StopRequest, wait_for_http

pytestmark = pytest.mark.reliability

LOAD_SECONDS = 4.0
#: Far above a request's own few ms (and the noise of a shared machine), far below any network
#: wait on the request path (the exporter's 10 s timeout, the breaker reporter's 2 s).
P99_BOUND_S = 0.25
MAX_BOUND_S = 1.5
STOP_WITHIN_S = 10.0  # the launcher flushes for at most 5 s on SIGTERM


FAULTS = {
    "healthy": lambda: http_collector(200),
    "down": down_collector,
    "stalling": stalling_collector,
    "refusing": lambda: http_collector(503),
}


@dataclass(frozen=True, slots=True)
class Run:
    fault: str
    latencies: list[float]
    errors: int
    stop_seconds: float
    contacts: int

    def line(self) -> str:
        p50, p99 = percentile(self.latencies, 0.5), percentile(self.latencies, 0.99)
        return (
            f"{self.fault}: {len(self.latencies)} requests, p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
            f"max {max(self.latencies) * 1000:.1f} ms, {self.errors} errors, stopped in {self.stop_seconds:.1f} s, "
            f"collector contacted {self.contacts} times"
        )


def run_service(fault: str, tmp_path: Path) -> Run:
    with FAULTS[fault]() as collector, (tmp_path / f"{fault}.log").open("w") as log:
        port = _free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "tracehouse.instrumentation", "--service-name", f"faulty-{fault}",
             "--endpoint", collector.url, "--", sys.executable, "-m", "tracehouse.demo.service", f"faulty-{fault}",
             "--port", str(port), "--latency-ms", "1"],
            env=_service_env(), stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
        try:
            wait_for_http(f"http://127.0.0.1:{port}/health", proc, 60, f"the service ({fault})", StopRequest())
            latencies, errors = _load(f"http://127.0.0.1:{port}/work", LOAD_SECONDS)
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            stop_seconds = time.monotonic() - started
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return Run(fault, latencies, errors, stop_seconds, collector.contacts)


def _service_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACEHOUSE_"))}
    env["OTEL_BSP_SCHEDULE_DELAY"] = "200"  # export often, so the fault is met many times
    return env


def _load(url: str, seconds: float) -> tuple[list[float], int]:
    """Requests back to back for `seconds`; their latencies and how many failed."""
    latencies, errors = [], 0
    deadline = time.monotonic() + seconds
    with httpx.Client(timeout=30) as client:
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                ok = client.get(url).status_code == 200
            except httpx.TransportError:
                ok = False
            latencies.append(time.monotonic() - started)
            errors += not ok
    return latencies, errors


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_services_keep_serving_whatever_the_collector_does(tmp_path: Path) -> None:
    runs = {fault: run_service(fault, tmp_path) for fault in FAULTS}
    for run in runs.values():
        print("instrumentation under collector fault:", run.line())
    for fault, run in runs.items():
        assert run.errors == 0, (fault, (tmp_path / f"{fault}.log").read_text()[-2000:])
        assert percentile(run.latencies, 0.99) < P99_BOUND_S, run.line()
        assert max(run.latencies) < MAX_BOUND_S, run.line()
        assert run.stop_seconds < STOP_WITHIN_S, run.line()
    # The faults were met: spans and breaker stats were really sent to each collector.
    assert runs["healthy"].contacts > 0
    assert runs["refusing"].contacts > 0
    assert runs["stalling"].contacts > 0
