"""OTLP/gRPC `TraceService/Export`, answered when durable.

Registered as a generic handler over raw bytes so the same decoder as OTLP/HTTP runs
(one parse, no second copy of the request). gzip is handled by grpc itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from grpc_status import rpc_status

from tracehouse.collector.admission import ByteBudget
from tracehouse.collector.auth import check_bearer
from tracehouse.collector.config import CollectorConfig
from tracehouse.collector.errors import IngestError, Overloaded
from tracehouse.collector.metrics import IngestMetrics
from tracehouse.collector.otlp import decode_protobuf
from tracehouse.collector.pipeline import Pipeline

log = logging.getLogger(__name__)

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
GRPC_BACKSTOP = 8  # grpc's own RPC limit, as a multiple of the collector's


def build_grpc_server(
    pipeline: Pipeline, config: CollectorConfig, metrics: IngestMetrics, budget: ByteBudget
) -> tuple[grpc.aio.Server, int]:
    """An unstarted server bound to `config.host:otlp_grpc_port`; returns it and the port.

    Past `max_concurrent_requests` exports the handler refuses with UNAVAILABLE + RetryInfo;
    grpc's own limit, further out, is the hard bound on messages held (its RESOURCE_EXHAUSTED
    carries no RetryInfo, so exporters would drop the batch rather than retry)."""
    server = grpc.aio.server(
        maximum_concurrent_rpcs=GRPC_BACKSTOP * config.max_concurrent_requests,
        options=[
            ("grpc.max_receive_message_length", config.max_body_bytes),
            ("grpc.so_reuseport", 0),
        ],
    )
    handler = grpc.unary_unary_rpc_method_handler(
        _export(pipeline, config, metrics, budget), request_deserializer=None, response_serializer=None
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {"Export": handler}),))
    port = server.add_insecure_port(f"{config.host}:{config.otlp_grpc_port}")
    if port == 0:
        raise OSError(f"cannot listen for OTLP/gRPC on {config.host}:{config.otlp_grpc_port}")
    return server, port


def _export(
    pipeline: Pipeline, config: CollectorConfig, metrics: IngestMetrics, budget: ByteBudget
) -> Callable[[bytes, grpc.aio.ServicerContext[bytes, bytes]], object]:
    active = 0

    async def export(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        nonlocal active
        try:
            check_bearer(_metadata(context, "authorization"), config.ingest_token)
            if active >= config.max_concurrent_requests:
                raise Overloaded(f"{active} exports are in flight, the most this collector takes; retry later")
            active += 1
            try:
                with budget.lease() as lease:
                    lease.reserve(len(request))
                    pipeline.refuse_early()
                    decoded = decode_protobuf(request, config.window)
                    metrics.decoded("otlp_grpc", decoded.payload.spans, decoded.rejected, decoded.outside_window)
                    await pipeline.submit(decoded.payload)
            finally:
                active -= 1
        except IngestError as exc:
            metrics.refuse("otlp_grpc", exc.grpc_code.name, exc.message)
            await context.abort_with_status(rpc_status.to_status(error_status(exc)))
        metrics.accepted.labels("otlp_grpc").inc(decoded.payload.spans)
        return decoded.response().SerializeToString()

    return export


def error_status(exc: IngestError) -> Status:
    """The rich status for `exc`; a retryable refusal carries `RetryInfo`, which OTLP
    exporters honour as the delay before their next attempt."""
    status = Status(code=exc.grpc_code.value[0], message=exc.message)
    if exc.retry_after is not None:
        delay = Duration()
        delay.FromTimedelta(timedelta(seconds=exc.retry_after))
        status.details.add().Pack(RetryInfo(retry_delay=delay))
    return status


def _metadata(context: grpc.aio.ServicerContext[bytes, bytes], key: str) -> str | None:
    for name, value in context.invocation_metadata() or ():
        if name == key:
            return value if isinstance(value, str) else value.decode("latin-1")
    return None
