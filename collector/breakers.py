"""Breaker stats in: ``POST /v1/breakers`` reports (and pulled ``hystrix.stream`` samples) are
grouped for up to ``interval`` seconds and written in one insert; a sender is answered only after
its samples are stored (or refused with a retryable 503 when the store is down).

Breaker stats are not spooled: the reporter keeps them in its own bounded buffer and retries.
"""

from __future__ import annotations

import asyncio
import json
import logging

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from tracehouse.collector.admission import ByteBudget
from tracehouse.collector.auth import check_bearer
from tracehouse.collector.body import read_body
from tracehouse.collector.config import CollectorConfig
from tracehouse.collector.errors import IngestError, MalformedPayload, Overloaded, StoreDown, UnsupportedMediaType
from tracehouse.instrumentation.breakers.wire import BreakerReport, ReportError
from tracehouse.storage import StorageError
from tracehouse.storage.seams import BreakerStore

__all__ = ["BreakerSink", "add_breaker_route"]

log = logging.getLogger(__name__)

_Pending = tuple[BreakerReport, str, "asyncio.Future[None]"]


class BreakerSink:
    """Group commit of breaker reports into the store."""

    def __init__(self, store: BreakerStore, interval: float = 0.2, max_pending: int = 2_000) -> None:
        self.store = store
        self.interval = interval
        self.max_pending = max_pending
        self.stored_samples = 0
        self._pending: list[_Pending] = []
        self._wake = asyncio.Event()
        self._closed = False

    async def submit(self, report: BreakerReport, source: str = "push") -> None:
        """Return once ``report`` is stored; raise :class:`Overloaded`/:class:`StoreDown` if it cannot be."""
        if self._closed:
            raise Overloaded("the collector is shutting down; retry")
        if len(self._pending) >= self.max_pending:
            raise Overloaded(f"{len(self._pending)} breaker reports are waiting to be stored; retry")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((report, source, future))
        self._wake.set()
        await asyncio.shield(future)

    async def run(self) -> None:
        """Flush until :meth:`close`; pending reports are flushed before it returns."""
        while not (self._closed and not self._pending):
            await self._wake.wait()
            self._wake.clear()
            if not self._closed:
                await asyncio.sleep(self.interval)  # let reports of the same second gather
            await self._flush()

    async def close(self) -> None:
        self._closed = True
        self._wake.set()

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            await asyncio.to_thread(self.store.write_breakers, [(report, source) for report, source, _ in batch])
        except StorageError as exc:
            log.warning("breaker stats: %s", exc)
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(StoreDown(f"breaker stats could not be stored ({exc}); retry"))
            return
        self.stored_samples += sum(len(report.samples) for report, _, _ in batch)
        for _, _, future in batch:
            if not future.done():
                future.set_result(None)


def add_breaker_route(app: FastAPI, sink: BreakerSink, config: CollectorConfig, budget: ByteBudget) -> None:
    """``POST /v1/breakers``: a JSON :class:`BreakerReport` (gzip allowed); 200 ``{"accepted": n}``."""

    @app.post("/v1/breakers")
    async def post_breakers(request: Request) -> Response:
        try:
            check_bearer(request.headers.get("authorization"), config.ingest_token)
            media = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media != "application/json":
                raise UnsupportedMediaType(
                    f"Content-Type {media or 'missing'!r} is not supported; send application/json"
                )
            with budget.lease() as lease:
                body = await read_body(request, config.max_body_bytes, lease)
            report = _decode(body)
            await sink.submit(report)
        except IngestError as exc:
            headers = {} if exc.retry_after is None else {"Retry-After": str(max(1, round(exc.retry_after)))}
            return JSONResponse({"error": exc.message}, exc.http_status, headers=headers)
        return JSONResponse({"accepted": len(report.samples)})


def _decode(body: bytes) -> BreakerReport:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise MalformedPayload(f"the body is not JSON: {exc}") from None
    try:
        return BreakerReport.from_json(doc)
    except ReportError as exc:
        raise MalformedPayload(f"invalid breaker report: {exc}") from None
