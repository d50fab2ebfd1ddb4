"""Breaker stats end to end: three real service processes report to a real `tracehouse serve`;
the cluster view equals the sum of their local windows, and /turbine.stream carries it in the
Hystrix format the original dashboard reads."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.server import Server, start_server
from tests.e2e.test_hystrix_pull import node_service, node_service_dir  # noqa: F401 - fixtures
from tracehouse.instrumentation.breakers.histogram import (
    PERCENTILES,
    bucket_of,
    bucket_value_ms,
    merge,
    percentiles_ms,
)
from tracehouse.instrumentation.breakers.hystrix import COMMAND_FIELDS

pytestmark = pytest.mark.e2e
SERVICE = Path(__file__).with_name("breaker_service.py")
DEADLINE = 60.0


def run_services(server: Server, plans: list[list[str]]) -> list[dict[str, Any]]:
    procs = []
    for i, plan in enumerate(plans):
        env = dict(
            os.environ,
            TRACEHOUSE_ENDPOINT=server.otlp_http.removesuffix("/v1/traces"),
            TRACEHOUSE_SERVICE_NAME="checkout",
            TRACEHOUSE_SERVICE_INSTANCE_ID=f"checkout-{i}:80",
            TRACEHOUSE_CLUSTER="shop",
            TRACEHOUSE_LOG_CORRELATION="false",
        )
        procs.append(
            subprocess.Popen([sys.executable, str(SERVICE), *plan], env=env, stdout=subprocess.PIPE, text=True)
        )
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def wait_for(server: Server, path: str, params: dict[str, str], done: Any) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE
    while True:
        body: dict[str, Any] = server.api(path, params).json()
        if done(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


def test_cluster_view_is_the_sum_of_the_instances(server: Server) -> None:
    local = run_services(server, [["1", "40", "10"], ["2", "25", "25"], ["3", "60", "5", "force-open"]])
    expected_counts: dict[str, int] = {}
    for result in local:
        for key, n in result["counts"].items():
            expected_counts[key] = expected_counts.get(key, 0) + n
    expected_requests = sum(expected_counts[k] for k in ("success", "failure", "timeout"))
    assert expected_requests == 165

    def complete(body: dict[str, Any]) -> bool:
        return any(b["name"] == "payments.charge" and b["requests"] == expected_requests for b in body["breakers"])

    body = wait_for(server, "/api/v1/breakers", {"cluster": "shop", "window": "2m"}, complete)
    [entry] = [b for b in body["breakers"] if b["name"] == "payments.charge"]
    assert entry["hosts"] == 3
    assert {k: v for k, v in entry["counts"].items() if v} == {k: v for k, v in expected_counts.items() if v}
    assert entry["errors"] == 40
    assert entry["errorPercentage"] == pytest.approx(100 * 40 / 165, abs=0.01)
    assert entry["states"] == {"CLOSED": 2, "FORCED_OPEN": 1}
    assert entry["open"] is False
    merged = merge({int(k): v for k, v in r["latency"].items()} for r in local)
    for key, value in percentiles_ms(merged).items():
        assert entry["latency"][f"p{key}"] == pytest.approx(value, abs=0.0005), key
    # ... and those are the percentiles of every raw latency of the three processes, to the bucket.
    raw = sorted(ms for r in local for ms in r["raw"])
    for key, percentile in PERCENTILES:
        nearest_rank = raw[max(1, math.ceil(percentile / 100 * len(raw))) - 1]
        assert entry["latency"][f"p{key}"] == pytest.approx(bucket_value_ms(bucket_of(nearest_rank)), abs=0.0005)
    assert sorted(i["instance"] for i in entry["instances"]) == ["checkout-0:80", "checkout-1:80", "checkout-2:80"]

    history = server.api("/api/v1/breakers/payments.charge/history", {"cluster": "shop", "step": "1m"}).json()
    assert sum(p["requests"] for p in history["points"]) == expected_requests

    event = first_turbine_event(server, {"cluster": "shop", "window": "2m"})
    assert set(COMMAND_FIELDS) <= set(event)
    assert event["reportingHosts"] == 3
    assert event["requestCount"] == expected_requests
    assert event["errorCount"] == 40
    # The original dashboard divides these by reportingHosts (and rounds the error % to one decimal).
    assert event["errorPercentage"] == round(100 * 40 / 165 * 3)
    assert round(event["errorPercentage"] / 3, 1) == pytest.approx(100 * 40 / 165, abs=0.2)
    assert event["isCircuitBreakerOpen"] == {"true": 1, "false": 2}  # the dashboard: "Open 1 Closed 2"
    assert event["propertyValue_metricsRollingStatisticalWindowInMilliseconds"] == 120_000 * 3


def first_turbine_event(server: Server, params: dict[str, str]) -> dict[str, Any]:
    with httpx.stream("GET", f"{server.ui}/turbine.stream", params=params, timeout=30) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        for line in answer.iter_lines():
            if line.startswith("data: "):
                event: dict[str, Any] = json.loads(line[len("data: ") :])
                if event["type"] == "HystrixCommand" and event["name"] == "payments.charge":
                    return event
    raise AssertionError("the stream ended without a HystrixCommand event")


def test_bad_breaker_reports_get_a_precise_400(server: Server) -> None:
    url = server.otlp_http.removesuffix("/v1/traces") + "/v1/breakers"
    answer = httpx.post(url, content=b"{not json", headers={"content-type": "application/json"})
    assert answer.status_code == 400
    assert "not JSON" in answer.json()["error"]
    report = {"service": "s", "instance": "i", "samples": [{"name": "x", "second": "soon"}]}
    answer = httpx.post(url, json=report)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid breaker report: samples[0].second: must be a non-negative integer"
    report = {"service": "s", "instance": "i", "samples": [{"name": "x", "second": int(time.time()), "state": "<b>"}]}
    answer = httpx.post(url, json=report)
    assert answer.status_code == 400
    assert answer.json()["error"] == (
        "invalid breaker report: samples[0].state: must be one of "
        "CLOSED, OPEN, HALF_OPEN, FORCED_OPEN, FORCED_CLOSED, DISABLED, METRICS_ONLY"
    )
    answer = httpx.post(url, content=b"{}", headers={"content-type": "text/plain"})
    assert answer.status_code == 415
    assert server.api("/turbine.stream").status_code == 400


def test_serve_pulls_a_node_hystrix_stream(tmp_path: Path, node_service: Any) -> None:  # noqa: F811
    url = f"http://127.0.0.1:{node_service.port}/hystrix.stream"
    pulled = start_server(tmp_path / "data", "--hystrix-streams", f"node-shop={url}")
    try:
        # Calls made before the collector's first snapshot would be from seconds nobody watched (and
        # counted as the window shows they stayed); this test is about calls it saw being made.
        metrics = f"{pulled.otlp_http}/metrics"
        while "tracehouse_hystrix_frames 0.0" in httpx.get(metrics).text:
            pass
        done = httpx.post(f"http://127.0.0.1:{node_service.port}/go", timeout=DEADLINE).json()
        assert done["seen"]["successes"] == 20

        def arrived(body: dict[str, Any]) -> bool:
            return any(
                b["name"] == "inventory.lookup" and b["counts"].get("short_circuited") == 3 for b in body["breakers"]
            )

        body = wait_for(pulled, "/api/v1/breakers", {"cluster": "node-shop", "window": "2m"}, arrived)
        [entry] = [b for b in body["breakers"] if b["name"] == "inventory.lookup"]
        assert entry["counts"]["success"] == 20
        assert entry["counts"]["short_circuited"] == 3
        assert entry["instances"][0]["instance"] == f"127.0.0.1:{node_service.port}"
        assert entry["open"] is True
    finally:
        pulled.stop()
