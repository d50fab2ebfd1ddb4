"""A demo microservice: FastAPI + httpx with no tracing code at all.

`tracehouse-run` instruments it from outside; each service waits a little, calls its
downstream services in turn — each call behind a Tracehouse circuit breaker with a timeout and a
fallback — and fails now and then, so traces have depth and errors and breakers have work.
With `--fault-cycle N` the service misbehaves on a schedule: slow, then failing, then healthy.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

import httpx
import uvicorn
from fastapi import FastAPI, HTTPException

from tracehouse.instrumentation.breakers import CircuitBreaker


def fault(cycle: float) -> str:
    """Where the fault schedule is now: ``healthy``, ``slow`` or ``failing`` (always healthy without a cycle)."""
    if cycle <= 0:
        return "healthy"
    phase = (time.time() % cycle) / cycle
    return "slow" if 0.5 <= phase < 0.7 else "failing" if 0.7 <= phase < 0.85 else "healthy"


def build_app(
    name: str, downstream: dict[str, str], error_rate: float, latency_ms: float, fault_cycle: float = 0.0
) -> FastAPI:
    app = FastAPI(title=f"demo {name}")
    client = httpx.AsyncClient(timeout=5.0)

    async def call(url: str) -> int:
        response = await client.get(f"{url}/work")
        if response.status_code >= 500:
            raise RuntimeError(f"{url} answered {response.status_code}")
        return response.status_code

    async def degraded(url: str) -> str:
        return "fallback"

    breakers = {
        callee: CircuitBreaker(
            f"{name}.{callee}", group=callee, timeout=0.5, minimum_calls=5, bulkhead=20, fallback=degraded
        )
        for callee in downstream
    }

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"service": name, "status": "ok"}

    @app.get("/work")
    async def work() -> dict[str, object]:
        state = fault(fault_cycle)
        slow = 1.0 if state == "slow" else 0.0
        await asyncio.sleep(slow + random.expovariate(1 / latency_ms) / 1000)
        results: list[object] = []
        for callee, url in downstream.items():
            results.append(await breakers[callee].call_async(call, url))
        if state == "failing" or random.random() < error_rate:  # noqa: S311 - demo faults
            raise HTTPException(503, f"{name} is having a bad moment")
        return {"service": name, "downstream": results}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="Run one demo service (launch it through tracehouse-run).")
    parser.add_argument("name", help="service name, also used in answers")
    parser.add_argument("--port", type=int, required=True, help="port to listen on (127.0.0.1)")
    parser.add_argument(
        "--call", action="append", default=[], help="NAME=URL of a downstream service (repeatable)", metavar="NAME=URL"
    )
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered with 503")
    parser.add_argument("--latency-ms", type=float, default=5.0, help="mean extra latency per request")
    parser.add_argument("--fault-cycle", type=float, default=0.0, help="seconds of one slow/failing/healthy cycle")
    args = parser.parse_args()
    downstream = dict(call.split("=", 1) for call in args.call)
    app = build_app(args.name, downstream, args.error_rate, args.latency_ms, args.fault_cycle)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
