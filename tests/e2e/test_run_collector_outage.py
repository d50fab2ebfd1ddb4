"""A collector outage seen from a service under ``tracehouse-run``: while ``tracehouse serve`` is frozen
(SIGSTOP: its socket accepts, nothing answers) and then stopped (connections refused), every request of
the service still succeeds, none slower than a generous bound; once the collector runs again on the same
port, new spans arrive (awaited by polling its API with a deadline), and the service says in one line
how many spans the outage cost: with the stored ones, they account for every span it made.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.run_services import SHOP, RunService, eventually, find_traces, start_run_service
from tests.e2e.server import Server, start_server

pytestmark = pytest.mark.e2e

PINGS = 40
#: Each /ping is a trace of three spans: the server span and the ASGI instrumentation's two "http send".
SPANS_PER_PING = 3
#: A queue smaller than one phase's spans, so that the outage drops some (a batch may not exceed the queue).
SMALL_QUEUE = {"OTEL_BSP_MAX_QUEUE_SIZE": "30", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "10"}
LOSS = re.compile(r"tracehouse: exporting to \S+ works again; (\d+) spans were lost")
#: No request may take longer while the collector is away. They take milliseconds when it is up; an export
#: in the request's path would take the OTLP timeout (10 s) against a frozen collector.
SLOW_SECONDS = 2.0


def ping_all(service: RunService, count: int = PINGS) -> float:
    """``count`` requests, each must succeed; returns the slowest one's seconds."""
    slowest = 0.0
    with httpx.Client(base_url=service.url, timeout=30) as client:
        for _ in range(count):
            began = time.perf_counter()
            assert client.get("/ping").status_code == 200
            slowest = max(slowest, time.perf_counter() - began)
    return slowest


@contextmanager
def frozen(server: Server) -> Iterator[None]:
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)


def spans_since(server: Server, service: str, since_ns: int) -> list[dict[str, object]] | None:
    return find_traces(server, service=service, start=str(since_ns // 1000)) or None


def stored_spans(server: Server, service: str) -> int:
    return sum(int(str(t["spanCount"])) for t in find_traces(server, service=service))


def reported_losses(service: RunService) -> list[int]:
    return [int(match[1]) for line in service.output if (match := LOSS.search(line))]


def test_requests_succeed_while_the_collector_is_away_and_spans_arrive_after(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(data)
    try:
        service = start_run_service("outage", server.otlp_http, SHOP, env=SMALL_QUEUE)
        try:
            ping_all(service, 1)
            eventually(lambda: spans_since(server, "outage", 0), what="no first span")  # the way to the store works

            with frozen(server):
                assert ping_all(service) < SLOW_SECONDS, "requests waited for a frozen collector"
            server.stop()
            assert ping_all(service) < SLOW_SECONDS, "requests waited for a stopped collector"

            port = urlsplit(server.otlp_http).port
            server = start_server(data, "--otlp-http-port", str(port))
            back = time.time_ns()
            ping_all(service, 3)
            eventually(lambda: spans_since(server, "outage", back), what="no span after the collector's return")
        finally:
            service.stop()  # flushes what is still queued
        made = (1 + 2 * PINGS + 3) * SPANS_PER_PING
        lost = reported_losses(service)
        assert sum(lost) > 0, service.text()
        assert stored_spans(server, "outage") + sum(lost) == made, (lost, service.text())
    finally:
        server.stop()
