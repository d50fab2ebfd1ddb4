"""The demo's queue worker: takes shipment jobs off the job queue and records each shipment in
its own database (SQLAlchemy on SQLite). No tracing code, like the other demo services.

It is a FastAPI app only for ``/health``; the work runs in one consumer thread started and
stopped with the app, so SIGTERM lets the job in hand finish before the process exits.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from tracehouse.demo.database import Shipments
from tracehouse.demo.jobqueue import JobQueue

__all__ = ["WorkerSettings", "build_app", "main"]

#: How long an idle worker waits before looking at the queue again.
IDLE_POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    name: str
    queue: Path
    database: str
    destination: str = "shipments"
    latency_ms: float = 10.0
    error_rate: float = 0.0


def shipper(settings: WorkerSettings) -> Callable[[dict[str, Any]], None]:
    """The job handler: wait a little (the carrier), fail now and then, record the shipment."""
    shipments = Shipments(settings.database)

    def ship(job: dict[str, Any]) -> None:
        time.sleep(random.expovariate(1000 / settings.latency_ms))
        if random.random() < settings.error_rate:  # noqa: S311 - demo faults
            raise RuntimeError(f"the carrier refused order {job.get('order')}")
        shipments.record(str(job.get("order", "?")))

    return ship


def consume(queue: JobQueue, handler: Callable[[dict[str, Any]], None], stop: threading.Event) -> None:
    """Handle jobs until ``stop`` is set; an empty queue is looked at again every ``IDLE_POLL_S``."""
    while not stop.is_set():
        if not queue.handle_next(handler):
            stop.wait(IDLE_POLL_S)


def build_app(settings: WorkerSettings) -> FastAPI:
    queue = JobQueue(settings.queue, settings.destination)
    handler = shipper(settings)
    stop = threading.Event()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        thread = threading.Thread(target=consume, args=(queue, handler, stop), name="consumer", daemon=True)
        thread.start()
        yield
        stop.set()
        thread.join(timeout=10)
        queue.close()

    app = FastAPI(title=f"demo {settings.name}", lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"service": settings.name, "status": "ok", "queued": queue.depth()}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the demo worker (launch it through tracehouse-run).")
    parser.add_argument("name", help="service name")
    parser.add_argument("--port", type=int, required=True, help="port of /health (127.0.0.1)")
    parser.add_argument("--queue", type=Path, required=True, help="SQLite file of the job queue")
    parser.add_argument("--destination", default="shipments", help="the queue's destination (queue name)")
    parser.add_argument("--database", required=True, help="SQLAlchemy URL of the shipments database")
    parser.add_argument("--latency-ms", type=float, default=10.0, help="mean time to ship one job")
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of jobs that fail (and are retried)")
    args = parser.parse_args()
    settings = WorkerSettings(
        args.name, args.queue, args.database, args.destination, latency_ms=args.latency_ms, error_rate=args.error_rate
    )
    uvicorn.run(build_app(settings), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
