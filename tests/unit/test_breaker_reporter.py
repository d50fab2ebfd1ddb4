"""The breaker reporter against a real HTTP server on loopback: completed seconds are shipped once,
as deltas; while the collector is down they wait in a bounded buffer (oldest dropped, counted)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.unit.conftest import FakeClock
from tracehouse.instrumentation.breakers import CircuitBreaker, Registry
from tracehouse.instrumentation.breakers.reporter import BreakerReporter
from tracehouse.instrumentation.breakers.wire import BreakerReport

pytestmark = pytest.mark.usefixtures("clean_breakers")


class Collector(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.reports: list[dict[str, Any]] = []
        self.headers_seen: list[str | None] = []
        self.status = 200

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/breakers"


class _Handler(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        if self.server.status == 200:
            self.server.reports.append(json.loads(body))
            self.server.headers_seen.append(self.headers.get("authorization"))
        self.send_response(self.server.status)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def samples(collector: Collector) -> list[dict[str, Any]]:
    return [s for r in collector.reports for s in BreakerReport.from_json(r, now=2e9).to_json()["samples"]]


def test_completed_seconds_are_shipped_once_as_deltas(collector: Collector, fake_clock: FakeClock) -> None:
    registry = Registry()
    breaker = CircuitBreaker("inventory.reserve", register=False)
    registry.add(breaker)
    reporter = BreakerReporter(
        collector.url, "orders", "host:1", headers={"Authorization": "Bearer t"}, registry=registry
    )
    start = int(fake_clock.now)
    for second in range(3):
        for _ in range(second + 1):
            breaker.call(lambda: None)
        fake_clock.advance(1)
    assert reporter.report_once()
    assert reporter.report_once()  # nothing new: nothing sent twice
    sent = samples(collector)
    assert [(s["second"], s["counts"]) for s in sent if s["counts"]] == [
        (start, {"success": 1}),
        (start + 1, {"success": 2}),
        (start + 2, {"success": 3}),
    ]
    assert collector.reports[0]["service"] == "orders"
    assert collector.reports[0]["cluster"] == "orders"
    assert collector.headers_seen[0] == "Bearer t"
    assert sent[0]["properties"]["circuitBreakerRequestVolumeThreshold"] == 20


def test_a_down_collector_keeps_a_bounded_buffer(collector: Collector, fake_clock: FakeClock) -> None:
    registry = Registry()
    breaker = CircuitBreaker("fraud.check", register=False)
    registry.add(breaker)
    reporter = BreakerReporter(collector.url, "payments", "host:2", registry=registry, max_buffered=3)
    collector.status = 503
    for _ in range(6):
        breaker.call(lambda: None)
        fake_clock.advance(1)
        assert not reporter.report_once()
    assert reporter.dropped == 3  # six seconds were complete and the buffer holds three: the oldest went
    collector.status = 200
    assert reporter.report_once()
    assert [s["counts"] for s in samples(collector)] == [{"success": 1}] * 3
    assert reporter.sent == 3


def test_stop_reports_the_running_second_and_a_later_report_sends_it_whole(
    collector: Collector, fake_clock: FakeClock
) -> None:
    registry = Registry()
    breaker = CircuitBreaker("stock.check", register=False)
    registry.add(breaker)
    reporter = BreakerReporter(collector.url, "orders", "host:3", registry=registry)
    running = int(fake_clock.now)
    breaker.call(lambda: None)
    breaker.call(lambda: None)
    reporter.stop()  # the process exits within the second: its two calls must not be lost
    assert [(s["second"], s["counts"]) for s in samples(collector)] == [(running, {"success": 2})]

    breaker.call(lambda: None)
    fake_clock.advance(1)
    assert reporter.report_once()
    # The second goes out again, whole: its sample replaces the partial one in the store (same
    # instance and second), so the calls are counted once, not 2 + 3.
    assert [(s["second"], s["counts"]) for s in samples(collector)][1:] == [(running, {"success": 3})]
    assert reporter.report_once()  # and only once
    assert len(samples(collector)) == 2
