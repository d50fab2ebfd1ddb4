"""A demo microservice: FastAPI + httpx (+ SQLAlchemy, + the job queue) with no tracing code.

`tracehouse-run` instruments it from outside. On ``GET /work`` a service waits a little, calls
its downstream services in turn — each call behind a Tracehouse circuit breaker with a timeout,
a bulkhead and a fallback — then, if so configured, reserves stock in its database and publishes a
shipment job, and fails now and then, so traces have depth and errors and breakers have work.
With a fault cycle it follows the scripted scenario of :mod:`tracehouse.demo.faults`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, HTTPException

from tracehouse.demo.database import Stock
from tracehouse.demo.faults import FaultSchedule
from tracehouse.demo.jobqueue import JobQueue
from tracehouse.instrumentation.breakers import CircuitBreaker

__all__ = ["Settings", "build_app", "main"]


@dataclass(frozen=True, slots=True)
class Settings:
    name: str
    downstream: dict[str, str] = field(default_factory=dict)
    call_timeout: float = 0.5
    error_rate: float = 0.0
    latency_ms: float = 5.0
    faults: FaultSchedule = field(default_factory=lambda: FaultSchedule(0.0))
    database: str | None = None  # SQLAlchemy URL of the stock database
    queue: Path | None = None  # SQLite file of the job queue it publishes to
    destination: str = "shipments"


def _breakers(settings: Settings) -> dict[str, tuple[CircuitBreaker, str]]:
    """One breaker per downstream service, named ``caller.callee`` and grouped by callee; its
    fallback answers for the callee when the call fails, times out or is refused."""

    async def degraded(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
        return {"fallback": True}

    return {
        callee: (
            CircuitBreaker(
                f"{settings.name}.{callee}",
                group=callee,
                timeout=settings.call_timeout,
                minimum_calls=5,
                bulkhead=20,
                fallback=degraded,
            ),
            url,
        )
        for callee, url in settings.downstream.items()
    }


async def _call(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    response = await client.get(f"{url}/work")
    if response.status_code >= 500:
        raise RuntimeError(f"{url} answered {response.status_code}")
    answer: dict[str, Any] = response.json()
    return answer


def build_app(settings: Settings) -> FastAPI:
    app = FastAPI(title=f"demo {settings.name}")
    client = httpx.AsyncClient(timeout=5.0)
    breakers = _breakers(settings)
    stock = Stock(settings.database) if settings.database else None
    queue = JobQueue(settings.queue, settings.destination) if settings.queue else None

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"service": settings.name, "status": "ok"}

    @app.get("/work")
    async def work() -> dict[str, Any]:
        now = time.time()
        mean = settings.latency_ms / 1000
        await asyncio.sleep(settings.faults.extra_latency(now) + random.expovariate(1 / mean))
        answer: dict[str, Any] = {"service": settings.name}
        for callee, (breaker, url) in breakers.items():
            answer[callee] = await breaker.call_async(_call, client, url)
        if stock is not None:
            answer["stock"] = await asyncio.to_thread(stock.reserve)
        if queue is not None:
            answer["shipment"] = await asyncio.to_thread(queue.publish, {"order": uuid.uuid4().hex[:12]})
        if settings.faults.failing(now) or random.random() < settings.error_rate:  # noqa: S311 - demo faults
            raise HTTPException(503, f"{settings.name} is having a bad moment")
        return answer

    return app


def parse_args(argv: list[str] | None = None) -> tuple[Settings, int, int]:
    """The settings, the port and the number of worker processes from the command line."""
    parser = argparse.ArgumentParser(description="Run one demo service (launch it through tracehouse-run).")
    parser.add_argument("name", help="service name, also used in answers")
    parser.add_argument("--port", type=int, required=True, help="port to listen on (127.0.0.1)")
    parser.add_argument("--call", action="append", default=[], metavar="NAME=URL", help="a downstream service")
    parser.add_argument("--call-timeout", type=float, default=0.5, help="seconds a downstream call may take")
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered with 503")
    parser.add_argument("--latency-ms", type=float, default=5.0, help="mean extra latency per request")
    parser.add_argument("--fault-cycle", type=float, default=0.0, help="seconds of one scripted fault round")
    parser.add_argument("--fault-epoch", type=float, default=0.0, help="Unix time the first round starts")
    parser.add_argument("--database", help="SQLAlchemy URL of a stock database to update per request")
    parser.add_argument("--queue", type=Path, help="SQLite file of the job queue to publish a job to per request")
    parser.add_argument("--destination", default="shipments", help="the queue's destination (queue name)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (each one instance)")
    args = parser.parse_args(argv)
    return (
        Settings(
            name=args.name,
            downstream=dict(call.split("=", 1) for call in args.call),
            call_timeout=args.call_timeout,
            error_rate=args.error_rate,
            latency_ms=args.latency_ms,
            faults=FaultSchedule(args.fault_cycle, args.fault_epoch),
            database=args.database,
            queue=args.queue,
            destination=args.destination,
        ),
        args.port,
        args.workers,
    )


def app_from_command_line() -> FastAPI:
    """The app of a uvicorn worker process: spawned workers get the parent's ``sys.argv``."""
    return build_app(parse_args()[0])


def main() -> None:
    settings, port, workers = parse_args()
    if workers > 1:  # uvicorn's supervisor spawns the workers, each instrumented like its parent
        target = "tracehouse.demo.service:app_from_command_line"
        uvicorn.run(target, factory=True, workers=workers, host="127.0.0.1", port=port, log_level="warning")
    else:
        uvicorn.run(build_app(settings), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
