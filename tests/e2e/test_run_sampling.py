"""The rate-limiting sampler in a real service: a FastAPI service under ``tracehouse-run --sampler ratelimit``
takes requests much faster than its rate, and the root traces stored in a real ``tracehouse serve`` number
about ``rate`` per second of the window they span.

The assertion counts traces; the window is measured by the spans' own start times, never by the test's clock.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.e2e.run_services import SHOP, find_traces, start_run_service
from tests.e2e.server import start_server

pytestmark = pytest.mark.e2e

RATE = 10
REQUESTS = 3000
#: The bucket starts full: the first second may hold a burst of up to RATE traces on top of the rate.
BURST_NS = 1_000_000_000
#: Allowed distance from RATE * window: 10 %, and two traces for the window's edges.
TOLERANCE, EDGES = 0.10, 2


def test_ratelimit_sampler_exports_rate_traces_per_second(tmp_path: Path) -> None:
    with ExitStack() as stack:
        server = start_server(tmp_path / "data")
        stack.callback(server.stop)
        flags = ["--sampler", "ratelimit", "--sampler-rate", str(RATE)]
        service = start_run_service("limited", server.otlp_http, SHOP, flags=flags)
        stack.callback(service.stop)
        with httpx.Client(base_url=service.url, timeout=30) as client:
            for _ in range(REQUESTS):
                assert client.get("/ping").status_code == 200
        service.stop()  # SIGTERM: the service flushes its last spans before it exits
        starts = sorted(int(t["startTimeUnixNano"]) for t in find_traces(server, service="limited"))

    assert 0 < len(starts) * 5 <= REQUESTS, f"{len(starts)} of {REQUESTS} requests sampled: no load above the rate"
    window_start, window_end = starts[0] + BURST_NS, starts[-1]
    seconds = (window_end - window_start) / 1e9
    assert seconds >= 2.0, f"the load lasted {seconds + 1:.2f} s only: too short to judge a rate"
    in_window = sum(window_start <= t <= window_end for t in starts)
    expected = RATE * seconds
    assert abs(in_window - expected) <= TOLERANCE * expected + EDGES, (in_window, round(expected, 1), seconds)
