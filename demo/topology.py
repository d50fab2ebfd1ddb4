"""What the demo runs: its services, whom each calls, and the command that launches each one
through ``tracehouse-run`` (``python -m tracehouse.instrumentation``), so none has tracing code.

    gateway ─▶ orders ─┬─▶ inventory ─▶ inventory.db (SQLite)
                       ├─▶ payments ─▶ fraud            (payments: the scripted fault)
                       └─▶ shipments (job queue) ┄┄▶ worker ─▶ shipping.db (SQLite)
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tracehouse.demo.faults import FaultSchedule

__all__ = [
    "QUEUE_DESTINATION",
    "QUEUE_FILE",
    "SERVICES",
    "SERVICE_ENV",
    "DemoService",
    "Launch",
    "command",
    "service_env",
]

QUEUE_FILE = "queue.sqlite"
QUEUE_DESTINATION = "shipments"


@dataclass(frozen=True, slots=True)
class DemoService:
    name: str
    role: str  # one line for the progress output
    module: str = "tracehouse.demo.service"
    calls: tuple[str, ...] = ()
    call_timeout: float = 0.5
    error_rate: float = 0.0
    latency_ms: float = 5.0
    faulty: bool = False  # follows the fault schedule
    database: str | None = None  # SQLite file (its name is the database node's name)
    queue: bool = False  # publishes to (or, for the worker, consumes) the job queue
    workers: int = 1  # uvicorn worker processes: instances of one service, children of its process


#: In start order: callees before their callers, so the first request finds everyone up.
SERVICES = (
    DemoService("fraud", "scores each payment", error_rate=0.01, latency_ms=3.0),
    DemoService("inventory", "reserves stock in SQLite", error_rate=0.02, latency_ms=4.0, database="inventory.db"),
    DemoService(
        "payments", "charges, after asking fraud (the scripted fault)", calls=("fraud",), error_rate=0.03,
        latency_ms=12.0, faulty=True,
    ),
    DemoService(
        "worker", "ships queued orders, records them in SQLite", module="tracehouse.demo.worker", error_rate=0.05,
        latency_ms=15.0, database="shipping.db", queue=True,
    ),
    DemoService(
        "orders", "reserves stock, takes payment, queues the shipment", calls=("inventory", "payments"),
        error_rate=0.01, latency_ms=6.0, queue=True,
    ),
    DemoService(
        "gateway", "the front door, two worker processes: traffic comes here", calls=("orders",), call_timeout=2.0,
        latency_ms=2.0, workers=2,
    ),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Launch:
    """Where the services run: their ports, their working directory (databases and queue live
    there) and the collector's OTLP/HTTP base URL."""

    ports: Mapping[str, int]
    workdir: Path
    otlp_endpoint: str
    faults: FaultSchedule

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"


def command(service: DemoService, launch: Launch) -> list[str]:
    """``tracehouse-run`` with the service's name and the collector, then the service itself."""
    tracehouse_run = [sys.executable, "-m", "tracehouse.instrumentation", "--service-name", service.name]
    tracehouse_run += ["--endpoint", launch.otlp_endpoint, "--"]
    app = [sys.executable, "-m", service.module, service.name, "--port", str(launch.ports[service.name])]
    app += ["--latency-ms", str(service.latency_ms), "--error-rate", str(service.error_rate)]
    if service.workers > 1:
        app += ["--workers", str(service.workers)]
    return tracehouse_run + app + _calls(service, launch) + _faults(service, launch) + _storage(service, launch)


def _calls(service: DemoService, launch: Launch) -> list[str]:
    if not service.calls:
        return []
    args = ["--call-timeout", str(service.call_timeout)]
    for callee in service.calls:
        args += ["--call", f"{callee}={launch.url(callee)}"]
    return args


def _faults(service: DemoService, launch: Launch) -> list[str]:
    if not service.faulty:
        return []
    return ["--fault-cycle", str(launch.faults.cycle), "--fault-epoch", str(launch.faults.epoch)]


def _storage(service: DemoService, launch: Launch) -> list[str]:
    args = []
    if service.database:
        # Relative to the working directory, so the database node is named after the file alone.
        args += ["--database", f"sqlite:///{service.database}"]
    if service.queue:
        args += ["--queue", str(launch.workdir / QUEUE_FILE), "--destination", QUEUE_DESTINATION]
    return args


#: Spans exported each second (the dashboard fills at once), none for the readiness checks on
#: ``/health``, and no automatic per-destination breakers: every call already has a named one, and
#: the automatic ones would repeat them under loopback ``host:port`` names.
SERVICE_ENV = {
    "OTEL_BSP_SCHEDULE_DELAY": "1000",
    "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS": "health",
    "TRACEHOUSE_AUTO_BREAKERS": "off",
}


def service_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The services' environment: ``environ`` with :data:`SERVICE_ENV` over it."""
    return {**environ, **SERVICE_ENV}
