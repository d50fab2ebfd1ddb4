"""A demo microservice: FastAPI + httpx with no tracing code at all.

`tracehouse-run` instruments it from outside; each service waits a little, calls its
downstream services in turn and fails now and then, so traces have depth and errors.
"""

from __future__ import annotations

import argparse
import asyncio
import random

import httpx
import uvicorn
from fastapi import FastAPI, HTTPException


def build_app(name: str, downstream: list[str], error_rate: float, latency_ms: float) -> FastAPI:
    app = FastAPI(title=f"demo {name}")
    client = httpx.AsyncClient(timeout=5.0)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"service": name, "status": "ok"}

    @app.get("/work")
    async def work() -> dict[str, object]:
        await asyncio.sleep(random.expovariate(1 / latency_ms) / 1000)
        results = []
        for url in downstream:
            response = await client.get(f"{url}/work")
            results.append(response.status_code)
        if random.random() < error_rate:  # noqa: S311 - demo faults
            raise HTTPException(503, f"{name} is having a bad moment")
        return {"service": name, "downstream": results}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="Run one demo service (launch it through tracehouse-run).")
    parser.add_argument("name", help="service name, also used in answers")
    parser.add_argument("--port", type=int, required=True, help="port to listen on (127.0.0.1)")
    parser.add_argument("--call", action="append", default=[], help="base URL of a downstream service (repeatable)")
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered with 503")
    parser.add_argument("--latency-ms", type=float, default=5.0, help="mean extra latency per request")
    args = parser.parse_args()
    app = build_app(args.name, args.call, args.error_rate, args.latency_ms)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
