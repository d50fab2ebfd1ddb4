"""OTLP/gRPC refusals, through a real grpc.aio server and client: a retryable refusal is
UNAVAILABLE with RetryInfo (what OTLP exporters wait on), a bad request INVALID_ARGUMENT."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status

from tracehouse.collector import ByteBudget, CollectorConfig, IngestMetrics, Pipeline, build_grpc_server
from tracehouse.storage import ClickHouseStore

pytestmark = pytest.mark.integration

METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


async def call(port: int, body: bytes) -> grpc.aio.AioRpcError:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        export = channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await export(body, timeout=10)
        return caught.value


def rich_status(error: grpc.aio.AioRpcError) -> Status:
    metadata = dict(error.trailing_metadata() or ())
    return Status.FromString(metadata["grpc-status-details-bin"])


def test_refusals_carry_precise_codes(store: ClickHouseStore) -> None:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from tests.unit.test_otlp_decode import sdk_spans

    async def scenario() -> None:
        config = CollectorConfig(otlp_grpc_port=0)
        pipeline = Pipeline(store, config)
        server, port = build_grpc_server(pipeline, config, IngestMetrics(), ByteBudget(config.max_inflight_bytes))
        await server.start()
        try:
            garbage = await call(port, b"\xff\xff")
            assert garbage.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "not a protobuf ExportTraceServiceRequest" in (garbage.details() or "")

            await pipeline.close()  # a closing pipeline refuses: retry later
            refused = await call(port, encode_spans(sdk_spans()).SerializeToString())
            assert refused.code() == grpc.StatusCode.UNAVAILABLE
            (detail,) = rich_status(refused).details
            retry = RetryInfo()
            assert detail.Unpack(retry)
            assert retry.retry_delay.seconds == 1
        finally:
            await server.stop(grace=None)

    asyncio.run(scenario())
