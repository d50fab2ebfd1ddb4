"""OTLP/gRPC `TraceService/Export`, answered when durable.

Registered as a generic handler over raw bytes so the same decoder as OTLP/HTTP runs
(one parse, no second copy of the request). gzip is handled by grpc itself. A call is refused
from its metadata (token, calls in flight) before grpc reads its message, and a message is read
only within a receive slot and a deadline: a sender that stalls mid-message never holds more
than the collector's byte budget.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import timedelta
from typing import TypeAlias

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from grpc_status import rpc_status

from tracehouse.collector.admission import ByteBudget
from tracehouse.collector.auth import check_bearer
from tracehouse.collector.config import CollectorConfig
from tracehouse.collector.errors import IngestError, MalformedPayload, Overloaded
from tracehouse.collector.metrics import IngestMetrics
from tracehouse.collector.otlp import decode_protobuf
from tracehouse.collector.pipeline import Pipeline

log = logging.getLogger(__name__)

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
GRPC_BACKSTOP = 8  # grpc's own RPC limit, as a multiple of the collector's
Context: TypeAlias = "grpc.aio.ServicerContext[bytes, bytes]"

#: HTTP/2 limits. 100 streams per connection is what RFC 9113 asks a server to allow (clients
#: queue past it); idle connections are closed after a minute and every connection after about
#: five (exporters reconnect on GOAWAY, and a balancer gets to spread them again); keep-alive
#: pings every 10 s or more (the least Go and Java clients can set) are allowed, with or without calls.
#: BDP probing is off: it grew every stream's window to 4 MiB, which a call not yet read (waiting
#: for a slot, or being refused) could fill; a call being read gets a window for its whole message.
CONNECTION_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_concurrent_streams", 100),
    ("grpc.max_connection_idle_ms", 60_000),
    ("grpc.max_connection_age_ms", 300_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.bdp_probe", 0),
    ("grpc.so_reuseport", 0),
)


def build_grpc_server(
    pipeline: Pipeline, config: CollectorConfig, metrics: IngestMetrics, budget: ByteBudget
) -> tuple[grpc.aio.Server, int]:
    """An unstarted server bound to `config.host:otlp_grpc_port`; returns it and the port.

    Past `max_concurrent_requests` exports the handler refuses with UNAVAILABLE + RetryInfo;
    grpc's own limit, further out, is the hard bound on calls (its RESOURCE_EXHAUSTED
    carries no RetryInfo, so exporters would drop the batch rather than retry). Messages being
    received are bounded by `max_inflight_bytes` (see `receive_slots`); received ones are held on `budget`."""
    server = grpc.aio.server(
        interceptors=(IngestToken(config.ingest_token, metrics),),
        maximum_concurrent_rpcs=GRPC_BACKSTOP * config.max_concurrent_requests,
        options=[
            ("grpc.max_receive_message_length", config.max_body_bytes),
            # an in-flight export gets its message deadline and the time to be made durable
            ("grpc.max_connection_age_grace_ms", round((config.body_timeout + 30) * 1000)),
            *CONNECTION_OPTIONS,
        ],
    )
    handler = grpc.stream_unary_rpc_method_handler(
        _export(pipeline, config, metrics, budget), request_deserializer=None, response_serializer=None
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {"Export": handler}),))
    port = server.add_insecure_port(f"{config.host}:{config.otlp_grpc_port}")
    if port == 0:
        raise OSError(f"cannot listen for OTLP/gRPC on {config.host}:{config.otlp_grpc_port}")
    return server, port


def receive_slots(config: CollectorConfig) -> int:
    """How many messages are read at once: grpc buffers a message whole before handing it over,
    so each read may hold `max_body_bytes` until it completes or its deadline passes."""
    return max(1, config.max_inflight_bytes // config.max_body_bytes)


class IngestToken(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses a call without the ingest token with UNAUTHENTICATED from its metadata alone,
    before grpc reads (and buffers) its message."""

    def __init__(self, token: str | None, metrics: IngestMetrics) -> None:
        self._token, self._metrics = token, metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        try:
            check_bearer(_header(details.invocation_metadata, "authorization"), self._token)
        except IngestError as exc:
            self._metrics.refuse("otlp_grpc", exc.grpc_code.name, exc.message)
            return grpc.stream_unary_rpc_method_handler(_refusal(exc))
        return await continuation(details)


def _refusal(exc: IngestError) -> Callable[[AsyncIterator[bytes], Context], Awaitable[bytes]]:
    async def refuse(requests: AsyncIterator[bytes], context: Context) -> bytes:
        await context.abort_with_status(rpc_status.to_status(error_status(exc)))
        raise AssertionError("abort_with_status returns only by raising")

    return refuse


def _export(
    pipeline: Pipeline, config: CollectorConfig, metrics: IngestMetrics, budget: ByteBudget
) -> Callable[[AsyncIterator[bytes], Context], Awaitable[bytes]]:
    active = 0
    slots = asyncio.Semaphore(receive_slots(config))

    async def export(requests: AsyncIterator[bytes], context: Context) -> bytes:
        nonlocal active
        try:
            if active >= config.max_concurrent_requests:
                raise Overloaded(f"{active} exports are in flight, the most this collector takes; retry later")
            active += 1
            try:
                request = await receive(context, slots, config.body_timeout)
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


async def receive(context: Context, slots: asyncio.Semaphore, deadline: float) -> bytes:
    """The call's request message, read while holding one of `slots`; `Overloaded` when no slot
    frees and the message does not arrive within `deadline` seconds (the body deadline of HTTP)."""
    try:
        async with asyncio.timeout(deadline), slots:
            message = await context.read()
    except TimeoutError:
        raise Overloaded(f"the request message did not arrive within {deadline:g} s; retry later") from None
    if message is grpc.aio.EOF:
        raise MalformedPayload("the call carried no request message")
    assert isinstance(message, bytes)
    return message


def error_status(exc: IngestError) -> Status:
    """The rich status for `exc`; a retryable refusal carries `RetryInfo`, which OTLP
    exporters honour as the delay before their next attempt."""
    status = Status(code=exc.grpc_code.value[0], message=exc.message)
    if exc.retry_after is not None:
        delay = Duration()
        delay.FromTimedelta(timedelta(seconds=exc.retry_after))
        status.details.add().Pack(RetryInfo(retry_delay=delay))
    return status


def _header(metadata: Sequence[tuple[str, str | bytes]] | None, key: str) -> str | None:
    for name, value in metadata or ():
        if name == key:
            return value if isinstance(value, str) else value.decode("latin-1")
    return None
