"""Services started under ``tracehouse-run`` for end-to-end tests, and waiting on what they export.

A :class:`RunService` is a real child process (the launcher ``exec``s the program, so the child's pid
is the service's), its output collected line by line. Every wait here polls an event with a deadline;
nothing sleeps a fixed time.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.e2e.server import Server

INTEROP = Path(__file__).parents[1] / "fixtures" / "interop"
SHOP = INTEROP / "shop.py"
STOCK = INTEROP / "stock.py"
READY_TIMEOUT = 60.0
DEADLINE = 60.0
POLL = 0.1

T = TypeVar("T")

#: The services' environment: a short batch delay so spans reach the collector within the test's patience,
#: and health checks left untraced (readiness probes would otherwise be traces of their own).
SERVICE_ENV = {"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_PYTHON_EXCLUDED_URLS": "health"}


@dataclass
class RunService:
    """A service process started by ``tracehouse-run``, listening on ``url``."""

    name: str
    proc: subprocess.Popen[str]
    url: str
    output: list[str] = field(default_factory=list)
    pump: threading.Thread | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (the service flushes its spans), then wait; killed if it does not exit in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            if self.pump is not None:
                self.pump.join(timeout)

    def wait_for_line(self, predicate: Callable[[str], bool], timeout: float = DEADLINE) -> str:
        """The first output line matching ``predicate``, awaited (the output is read in the background)."""

        def matching() -> str | None:
            return next((line for line in list(self.output) if predicate(line)), None)

        return eventually(matching, timeout, "no matching line")

    def text(self) -> str:
        return "\n".join(self.output)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def launcher() -> str:
    executable = Path(sys.executable).parent / "tracehouse-run"
    assert executable.is_file(), f"{executable} missing: install tracehouse into this environment"
    return str(executable)


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test's environment without any OTEL_* or TRACEHOUSE_* setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACEHOUSE_"))}
    return {**env, **(extra or {})}


def start_run_service(
    name: str,
    endpoint: str,
    script: Path,
    args: Sequence[str] = (),
    flags: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> RunService:
    """``tracehouse-run --service-name NAME --endpoint ENDPOINT FLAGS -- python SCRIPT --port P ARGS``
    (environment: :data:`SERVICE_ENV` and ``env``), returned once ``/health`` answers."""
    port = free_port()
    command = [launcher(), "--service-name", name, "--endpoint", endpoint, *flags, "--"]
    command += [sys.executable, str(script), "--port", str(port), *args]
    proc = subprocess.Popen(
        command,
        env=clean_env({**SERVICE_ENV, **(env or {})}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    service = RunService(name, proc, f"http://127.0.0.1:{port}")
    service.pump = threading.Thread(target=_pump, args=(proc, service.output), daemon=True)
    service.pump.start()
    try:
        eventually(lambda: _healthy(service), READY_TIMEOUT)
    except AssertionError:
        service.stop()
        raise AssertionError(f"{name} did not become ready:\n{service.text()}") from None
    return service


def _pump(proc: subprocess.Popen[str], output: list[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        output.append(line.rstrip("\n"))
    proc.stdout.close()


def _healthy(service: RunService) -> bool | None:
    if service.proc.poll() is not None:
        raise AssertionError(f"{service.name} exited with {service.proc.returncode}:\n{service.text()}")
    try:
        return httpx.get(f"{service.url}/health", timeout=1.0).status_code == 200 or None
    except httpx.TransportError:
        return None


def eventually(probe: Callable[[], T | None], timeout: float = DEADLINE, what: str = "nothing") -> T:
    """Call ``probe`` until it returns something other than None (or False); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} came within {timeout:g} s")
        time.sleep(POLL)


def trace_when(server: Server, trace_id: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """``GET /api/v1/traces/{trace_id}``, polled until the trace is stored and ``done`` says it is complete."""

    last: list[str] = ["404"]

    def probe() -> dict[str, Any] | None:
        answer = server.api(f"/api/v1/traces/{trace_id}")
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        body: dict[str, Any] = answer.json()
        last[0] = ", ".join(f"{s['serviceName']} {s['kind']} {s['name']}" for s in body["spans"])
        return body if done(body) else None

    try:
        return eventually(probe)
    except AssertionError:
        raise AssertionError(f"trace {trace_id} not complete within {DEADLINE:g} s; stored: {last[0]}") from None


def find_traces(server: Server, **params: str) -> list[dict[str, Any]]:
    """Trace summaries from ``GET /api/v1/traces`` (newest first)."""
    answer = server.api("/api/v1/traces", {"limit": "1000", **params})
    answer.raise_for_status()
    traces: list[dict[str, Any]] = answer.json()["traces"]
    return traces
