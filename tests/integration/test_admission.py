"""Memory is bounded by configuration: request bytes held at once (queued, in flight) are
capped, and past the cap a sender gets a retryable 503 at once — through a real uvicorn
server on loopback, with the real pipeline and embedded store."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tracehouse.collector import ByteBudget, CollectorConfig, IngestMetrics, Overloaded, Pipeline, build_otlp_http_app
from tracehouse.storage import ClickHouseStore

pytestmark = pytest.mark.integration

KiB = 1024


def request_of(size: int) -> bytes:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = os.urandom(16), os.urandom(8), "padded"
    span.start_time_unix_nano = span.end_time_unix_nano = time.time_ns()
    span.attributes.append(KeyValue(key="pad", value=AnyValue(string_value="x" * size)))
    return request.SerializeToString()


@contextlib.asynccontextmanager
async def listening(app: FastAPI) -> AsyncIterator[int]:
    """`app` served by uvicorn on a free loopback port (yielded) until the block ends."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await serving
        sock.close()


def test_budget_leases_are_returned() -> None:
    budget = ByteBudget(100)
    with budget.lease() as lease:
        lease.reserve(60)
        with pytest.raises(Overloaded, match="takes at most 100"), budget.lease() as other:
            other.reserve(50)
        assert budget.used == 60
    assert budget.used == 0


def test_requests_past_the_byte_budget_are_refused_at_once(store: ClickHouseStore) -> None:
    config = CollectorConfig(max_body_bytes=64 * KiB, max_inflight_bytes=100 * KiB, flush_interval=30)
    body = request_of(50 * KiB)

    async def scenario() -> None:
        pipeline = Pipeline(store, config)
        budget = ByteBudget(config.max_inflight_bytes)
        flushing = asyncio.create_task(pipeline.run())
        headers = {"content-type": "application/x-protobuf"}
        try:
            async with listening(build_otlp_http_app(pipeline, config, IngestMetrics(), budget)) as port:
                url = f"http://127.0.0.1:{port}/v1/traces"
                async with httpx.AsyncClient(timeout=30) as client:
                    first = asyncio.create_task(client.post(url, content=body, headers=headers))
                    async with asyncio.timeout(30):
                        while pipeline.queued_spans == 0:  # held: queued for 30 s
                            await asyncio.sleep(0.01)
                    assert budget.used >= len(body)
                    second = await client.post(url, content=body, headers=headers)
                    assert second.status_code == 503
                    assert second.headers["retry-after"] == "1"
                    await pipeline.close()  # flushes the first request now
                    assert (await first).status_code == 200
                assert budget.used == 0
        finally:
            await pipeline.close()
            await flushing

    asyncio.run(scenario())


def test_a_full_queue_refuses_before_decoding(store: ClickHouseStore) -> None:
    """Under overload a request is refused before it is parsed: a body that would be a 400 gets
    the retryable 503 of a full queue, so refused requests cost no decoding."""
    config = CollectorConfig(max_queued_spans=1, flush_spans=1, flush_interval=30)
    config.validate()

    async def scenario() -> None:
        pipeline = Pipeline(store, config)
        app = build_otlp_http_app(pipeline, config, IngestMetrics(), ByteBudget(config.max_inflight_bytes))
        headers = {"content-type": "application/x-protobuf"}
        flushing: asyncio.Task[None] | None = None
        try:
            async with listening(app) as port, httpx.AsyncClient(timeout=30) as client:
                url = f"http://127.0.0.1:{port}/v1/traces"
                # The pipeline is not running yet: the first request's span stays queued.
                first = asyncio.create_task(client.post(url, content=request_of(KiB), headers=headers))
                async with asyncio.timeout(30):
                    while pipeline.queued_spans == 0:
                        await asyncio.sleep(0.01)
                refused = await client.post(url, content=b"\xff not protobuf", headers=headers)
                assert refused.status_code == 503, refused.content
                assert refused.headers["retry-after"] == "1"
                flushing = asyncio.create_task(pipeline.run())
                assert (await first).status_code == 200
                malformed = await client.post(url, content=b"\xff not protobuf", headers=headers)
                assert malformed.status_code == 400  # with room in the queue, it is decoded
        finally:
            await pipeline.close()
            if flushing is not None:
                await flushing

    asyncio.run(scenario())


def test_a_body_of_unknown_length_holds_only_what_has_arrived(store: ClickHouseStore) -> None:
    """A chunked body that stalls after its first chunk holds that chunk, not the body limit: a
    few such senders (slow or hostile) cannot take the budget every other sender needs."""
    config = CollectorConfig(max_body_bytes=64 * KiB, max_inflight_bytes=100 * KiB, flush_interval=0.01)

    async def scenario() -> None:
        pipeline = Pipeline(store, config)
        budget = ByteBudget(config.max_inflight_bytes)
        flushing = asyncio.create_task(pipeline.run())
        stalled = []
        try:
            async with listening(build_otlp_http_app(pipeline, config, IngestMetrics(), budget)) as port:
                try:
                    for _ in range(3):  # at the whole limit each, two would have filled the budget
                        _, writer = await asyncio.open_connection("127.0.0.1", port)
                        writer.write(
                            b"POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\n"
                            b"transfer-encoding: chunked\r\n\r\n5\r\n\x0a\x03abc\r\n"
                        )
                        await writer.drain()
                        stalled.append(writer)
                    async with asyncio.timeout(30):
                        while budget.used < 3 * 5:  # each has read its first chunk
                            await asyncio.sleep(0.01)
                    assert budget.used == 3 * 5
                    async with httpx.AsyncClient(timeout=30) as client:
                        answer = await client.post(
                            f"http://127.0.0.1:{port}/v1/traces", content=request_of(50 * KiB),
                            headers={"content-type": "application/x-protobuf"},
                        )  # fmt: skip
                    assert answer.status_code == 200
                finally:  # before the server stops: it would wait for them
                    for writer in stalled:
                        writer.close()
        finally:
            await pipeline.close()
            await flushing

    asyncio.run(scenario())
