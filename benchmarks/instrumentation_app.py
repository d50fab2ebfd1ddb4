"""The service of `make bench-instrumentation`: a small FastAPI endpoint with no tracing code, served by uvicorn.

It does what a typical JSON endpoint does (a path parameter validated, a small object serialised) and
nothing that would hide the instrumentation's cost behind its own (no I/O, no sleep, no logging).
"""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI(title="bench")


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/items/{item_id}")
async def item(item_id: int) -> dict[str, int | str]:
    return {"id": item_id, "name": "widget", "stock": item_id % 7}
