"""The pipeline's time and size bounds over the real embedded store: one insert carries at most
`flush_bytes` of OTLP payload (the store's memory per insert is bounded), and a queue that has
stopped draining refuses new requests with a retryable answer instead of letting them wait."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tests.integration.test_admission import request_of
from tracehouse.collector import CollectorConfig, Overloaded, Pipeline, decode_protobuf
from tracehouse.collector.config import MiB
from tracehouse.storage import ClickHouseStore, OtlpPayload, SpanBatch

pytestmark = pytest.mark.integration


class RecordingWriter:
    """The real store, recording each insert's size; `gate` (when given) holds inserts back."""

    def __init__(self, store: ClickHouseStore, gate: threading.Event | None = None) -> None:
        self.store = store
        self.gate = gate
        self.entered = threading.Event()  # an insert has started
        self.sizes: list[int] = []

    def write(self, batch: SpanBatch) -> None:
        self.store.write(batch)

    def write_otlp(self, payload: OtlpPayload) -> None:
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(30)
        self.sizes.append(len(payload.data))
        self.store.write_otlp(payload)


def test_one_insert_carries_at_most_flush_bytes(store: ClickHouseStore) -> None:
    config = CollectorConfig(flush_interval=0.5, flush_bytes=MiB, flush_workers=1)
    writer = RecordingWriter(store)
    payloads = [decode_protobuf(request_of(300 * 1024)).payload for _ in range(10)]

    async def scenario() -> None:
        pipeline = Pipeline(writer, config)
        task = asyncio.create_task(pipeline.run())
        try:
            await asyncio.gather(*(pipeline.submit(p) for p in payloads))
        finally:
            await pipeline.close()
            await task

    asyncio.run(scenario())
    assert sum(writer.sizes) == sum(len(p.data) for p in payloads)  # every payload, once
    assert len(writer.sizes) >= 4
    assert max(writer.sizes) <= MiB


def test_a_queue_that_stopped_draining_refuses_at_once(store: ClickHouseStore) -> None:
    config = CollectorConfig(flush_interval=0.01, flush_workers=1, max_queue_delay=0.2)
    gate = threading.Event()
    writer = RecordingWriter(store, gate)
    first, second, third = (decode_protobuf(request_of(1024)).payload for _ in range(3))

    async def scenario() -> None:
        pipeline = Pipeline(writer, config)
        task = asyncio.create_task(pipeline.run())
        try:
            inserting = asyncio.create_task(pipeline.submit(first))  # taken, held in the insert
            await _until(writer.entered.is_set)
            waiting = asyncio.create_task(pipeline.submit(second))  # queued behind it
            await _until(lambda: pipeline.queued_spans == 1)
            await asyncio.sleep(config.flush_interval + config.max_queue_delay + 0.05)  # the delay under test
            with pytest.raises(Overloaded, match="the store is behind"):
                await pipeline.submit(third)
            gate.set()
            await asyncio.gather(inserting, waiting)  # both acknowledged once the store moves
            await pipeline.submit(third)  # and the queue takes requests again
        finally:
            gate.set()
            await pipeline.close()
            await task

    asyncio.run(scenario())
    assert len(writer.sizes) == 3


async def _until(condition: object) -> None:
    async with asyncio.timeout(30):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.005)
