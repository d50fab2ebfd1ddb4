"""Requests in flight are bounded per listener and the refusal says when to retry: past
`max_concurrent_requests`, HTTP answers 503 + Retry-After and gRPC UNAVAILABLE + RetryInfo —
through real uvicorn and grpc.aio servers, the real pipeline and the embedded store, with the
first request held in a slow insert."""

from __future__ import annotations

import asyncio
import socket
import threading

import grpc
import httpx
import pytest
import uvicorn
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status

from tests.integration.test_admission import request_of
from tests.integration.test_grpc_refusals import METHOD, rich_status
from tracehouse.collector import ByteBudget, CollectorConfig, IngestMetrics, Pipeline, build_grpc_server
from tracehouse.collector import build_otlp_http_app as build_http
from tracehouse.storage import ClickHouseStore, OtlpPayload, SpanBatch

pytestmark = pytest.mark.integration

CONFIG = CollectorConfig(otlp_grpc_port=0, max_concurrent_requests=1, flush_interval=0.01)


class SlowStore:
    """The real store, whose OTLP inserts wait for `gate`; `entered` once one has started."""

    def __init__(self, store: ClickHouseStore) -> None:
        self.store, self.gate, self.entered = store, threading.Event(), threading.Event()

    def write(self, batch: SpanBatch) -> None:
        self.store.write(batch)

    def write_otlp(self, payload: OtlpPayload) -> None:
        self.entered.set()
        assert self.gate.wait(30)
        self.store.write_otlp(payload)


async def _until_inside(writer: SlowStore) -> None:
    async with asyncio.timeout(30):
        while not writer.entered.is_set():
            await asyncio.sleep(0.005)


def test_http_past_the_limit_is_503_with_retry_after(store: ClickHouseStore) -> None:
    writer = SlowStore(store)

    async def scenario() -> None:
        pipeline = Pipeline(writer, CONFIG)
        metrics = IngestMetrics()
        app = build_http(pipeline, CONFIG, metrics, ByteBudget(CONFIG.max_inflight_bytes))
        sock = socket.create_server(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
        tasks = [asyncio.create_task(server.serve(sockets=[sock])), asyncio.create_task(pipeline.run())]
        url, headers = f"http://127.0.0.1:{sock.getsockname()[1]}/v1/traces", {"content-type": "application/x-protobuf"}
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                first = asyncio.create_task(client.post(url, content=request_of(100), headers=headers))
                await _until_inside(writer)
                second = await client.post(url, content=request_of(100), headers=headers)
                assert second.status_code == 503
                assert second.headers["retry-after"] == "1"
                # an OTLP error answer: a Status in the request's encoding, its code UNAVAILABLE
                status = Status.FromString(second.content)
                assert (status.code, second.headers["content-type"]) == (14, "application/x-protobuf")
                assert "requests are in flight" in status.message
                as_json = await client.post(url, content=b"{}", headers={"content-type": "application/json"})
                assert (as_json.status_code, as_json.json()["code"]) == (503, 14)
                # the monitoring still answers, and counts the refusals
                scraped = (await client.get(url.replace("/v1/traces", "/metrics"))).text
                assert 'tracehouse_ingest_requests_refused_total{protocol="otlp_http",status="503"} 2.0' in scraped
                writer.gate.set()
                assert (await first).status_code == 200
                assert (await client.post(url, content=request_of(100), headers=headers)).status_code == 200
        finally:
            writer.gate.set()
            server.should_exit = True
            await pipeline.close()
            await asyncio.gather(*tasks)
            sock.close()

    asyncio.run(scenario())


def test_grpc_past_the_limit_is_unavailable_with_retry_info(store: ClickHouseStore) -> None:
    writer = SlowStore(store)

    async def scenario() -> None:
        pipeline = Pipeline(writer, CONFIG)
        server, port = build_grpc_server(pipeline, CONFIG, IngestMetrics(), ByteBudget(CONFIG.max_inflight_bytes))
        await server.start()
        running = asyncio.create_task(pipeline.run())
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                export = channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
                first = asyncio.ensure_future(export(request_of(100), timeout=30))
                await _until_inside(writer)
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await export(request_of(100), timeout=30)
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
                (detail,) = rich_status(refused.value).details
                assert detail.Unpack(RetryInfo())
                writer.gate.set()
                await first
        finally:
            writer.gate.set()
            await pipeline.close()
            await running
            await server.stop(grace=None)

    asyncio.run(scenario())
