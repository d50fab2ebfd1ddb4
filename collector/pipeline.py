"""The ingest pipeline: one bounded queue, group commit into the `SpanWriter`.

A request's spans are queued and its sender is answered only when the insert holding
them returned (durable). The queue is bounded in spans; past the bound, `submit`
refuses at once with `Overloaded` instead of letting memory grow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass

from tracehouse.collector.errors import Overloaded, StoreDown
from tracehouse.storage import SpanBatch, SpanWriter, StorageError

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Pending:
    batch: SpanBatch
    done: asyncio.Future[None]
    queued_at: float


class Pipeline:
    """Group commit: flush at `flush_spans` queued spans or `flush_interval` seconds
    after the oldest queued request. Run `run()` as a task; `close()` drains it."""

    def __init__(self, writer: SpanWriter, *, flush_spans: int, flush_interval: float, max_queued_spans: int) -> None:
        self._writer = writer
        self._flush_spans = flush_spans
        self._flush_interval = flush_interval
        self._max_queued = max_queued_spans
        self._queue: deque[_Pending] = deque()
        self._queued_spans = 0
        self._wakeup = asyncio.Event()
        self._closing = False
        self.written_spans = 0

    @property
    def queued_spans(self) -> int:
        return self._queued_spans

    async def submit(self, batch: SpanBatch) -> None:
        """Return once `batch` is durable; raise `Overloaded` (queue full, closing) or
        `StoreDown` (the insert failed; nothing of the batch is assumed stored)."""
        if not len(batch):
            return
        if self._closing:
            raise Overloaded("the collector is shutting down; retry against another instance or later")
        if self._queued_spans + len(batch) > self._max_queued:
            raise Overloaded(f"ingest queue is full ({self._queued_spans} spans waiting); retry later")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(batch, done, time.monotonic()))
        self._queued_spans += len(batch)
        if self._queued_spans >= self._flush_spans or len(self._queue) == 1:
            self._wakeup.set()
        await asyncio.shield(done)

    async def run(self) -> None:
        """Flush until `close()` was called and the queue is empty."""
        while not (self._closing and not self._queue):
            await self._wait_for_work()
            await self._flush(self._take())

    async def close(self) -> None:
        """Refuse new batches; the `run()` task then flushes what is queued and ends."""
        self._closing = True
        self._wakeup.set()

    async def _wait_for_work(self) -> None:
        while not self._queue and not self._closing:
            self._wakeup.clear()
            await self._wakeup.wait()
        if self._closing or self._queued_spans >= self._flush_spans:
            return
        linger = self._queue[0].queued_at + self._flush_interval - time.monotonic()
        if linger > 0:
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), linger)

    def _take(self) -> list[_Pending]:
        taken: list[_Pending] = []
        spans = 0
        while self._queue and (not taken or spans + len(self._queue[0].batch) <= self._flush_spans):
            item = self._queue.popleft()
            taken.append(item)
            spans += len(item.batch)
        self._queued_spans -= spans
        return taken

    async def _flush(self, items: list[_Pending]) -> None:
        if not items:
            return
        merged = SpanBatch.concat([item.batch for item in items])
        try:
            await asyncio.to_thread(self._writer.write, merged)
        except StorageError as exc:
            log.warning("could not store %d spans: %s", len(merged), exc)
            _settle(items, StoreDown(f"the store refused the spans, retry later: {exc}"))
            return
        except Exception as exc:
            log.exception("unexpected error storing %d spans", len(merged))
            _settle(items, StoreDown(f"internal error storing the spans, retry later: {type(exc).__name__}"))
            return
        self.written_spans += len(merged)
        _settle(items, None)


def _settle(items: list[_Pending], error: Exception | None) -> None:
    for item in items:
        if item.done.done():
            continue
        if error is None:
            item.done.set_result(None)
        else:
            item.done.set_exception(error)
