"""`tracehouse demo` end to end: the server and demo services (launched by tracehouse-run,
no tracing code in them) produce one connected trace across four processes, and every
process the demo started is gone when it ends."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.server import start_server

pytestmark = pytest.mark.e2e


def test_demo_traces_a_request_across_services(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    demo = subprocess.run(
        [sys.executable, "-m", "tracehouse", "demo", "--data-dir", str(data), "--duration", "4", "--rate", "10",
         "--ui-port", "0", "--otlp-http-port", "0", "--otlp-grpc-port", "0", "--zipkin-port", "0"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "[3/3] sending 10 requests/s" in demo.stdout
    assert re.search(r"Dashboard\s+http://127\.0\.0\.1:\d+/", demo.stdout)
    match = re.search(r"A trace\s+curl \S+/api/v1/traces/([0-9a-f]{32})", demo.stdout)
    assert match, demo.stdout

    # The demo's server is gone (its data directory can be opened again) and kept the spans.
    server = start_server(data)
    try:
        body = server.api(f"/api/v1/traces/{match[1]}").json()
    finally:
        server.stop()
    assert {s["serviceName"] for s in body["spans"]} == {"gateway", "orders", "inventory", "payments"}
    roots = [s for s in body["spans"] if s["depth"] == 0]
    assert [(r["serviceName"], r["kind"]) for r in roots] == [("gateway", "Server")]
    servers = {s["serviceName"] for s in body["spans"] if s["kind"] == "Server"}
    clients = {s["serviceName"] for s in body["spans"] if s["kind"] == "Client"}
    assert servers == {"gateway", "orders", "inventory", "payments"}
    assert clients == {"gateway", "orders"}
