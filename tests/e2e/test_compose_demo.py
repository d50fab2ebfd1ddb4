"""compose/demo_services.py — the demo services of the compose files — for real, outside Docker:
its services (launched by tracehouse-run) send spans to a collector's OTLP/HTTP endpoint, here a
`tracehouse serve`, and SIGTERM (what `docker compose down` sends) stops every one of them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.server import Server
from tracehouse.demo.runner import SERVICES

pytestmark = pytest.mark.e2e

SCRIPT = Path(__file__).parents[2] / "compose" / "demo_services.py"


def free_ports(count: int) -> int:
    """The first of `count` consecutive ports that are free now."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base: int = probe.getsockname()[1]
        if base + count < 65536 and all(_free(port) for port in range(base, base + count)):
            return base
    raise AssertionError("no block of free ports")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_demo_services_report_to_the_collector_and_stop_on_sigterm(server: Server) -> None:
    base = free_ports(len(SERVICES))
    env = dict(os.environ, TRACEHOUSE_ENDPOINT=server.otlp_http, DEMO_RATE="20", DEMO_FIRST_PORT=str(base))
    proc = subprocess.Popen([sys.executable, str(SCRIPT)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        wanted = {service.name for service in SERVICES}
        deadline = time.monotonic() + 90
        seen: set[str] = set()
        while not wanted <= seen and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            seen = set(server.api("/api/v1/services").json()["services"])
            time.sleep(0.5)
        assert wanted <= seen
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        out = proc.stdout.read() if proc.stdout else ""
        if proc.stdout:
            proc.stdout.close()
    assert code == 0, out
    assert f"demo: {len(SERVICES)} services up" in out
    for port in range(base, base + len(SERVICES)):
        with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
            probe.connect(("127.0.0.1", port))  # nobody listens: every service is gone
