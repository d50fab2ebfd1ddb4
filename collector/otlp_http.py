"""OTLP/HTTP `POST /v1/traces` (protobuf and JSON, gzip), answered when durable.

Answers follow the OTLP spec: 200 with `ExportTraceServiceResponse` (partial_success when
spans were refused), 400/413/415 with a `google.rpc.Status` for bad input, 503 with
`Retry-After` when the collector or the store cannot take the spans now.
"""

from __future__ import annotations

import logging

import grpc
from fastapi import FastAPI, Request, Response
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc.status_pb2 import Status
from starlette.types import Scope

from tracehouse.collector.admission import ByteBudget
from tracehouse.collector.auth import check_bearer
from tracehouse.collector.body import read_body
from tracehouse.collector.breakers import BreakerSink, add_breaker_route
from tracehouse.collector.config import CollectorConfig
from tracehouse.collector.errors import IngestError, UnsupportedMediaType
from tracehouse.collector.http_guard import RequestLimit
from tracehouse.collector.metrics import CONTENT_TYPE, IngestMetrics
from tracehouse.collector.otlp import decode_json, decode_protobuf
from tracehouse.collector.pipeline import Pipeline

log = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_PROTOBUF_TYPES = (PROTOBUF, "application/protobuf")


def build_otlp_http_app(
    pipeline: Pipeline,
    config: CollectorConfig,
    metrics: IngestMetrics,
    budget: ByteBudget,
    breakers: BreakerSink | None = None,
) -> FastAPI:
    """``POST /v1/traces``, ``GET /metrics``, and ``POST /v1/breakers`` when ``breakers`` is given."""
    app = FastAPI(title="Tracehouse OTLP/HTTP receiver", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(
        RequestLimit,
        limit=config.max_concurrent_requests,
        answer=_busy,
        on_refused=lambda why: metrics.refuse("otlp_http", "503", why),
    )
    if breakers is not None:
        add_breaker_route(app, breakers, config, budget)

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        """The collector's own metrics, Prometheus text format."""
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.post("/v1/traces")
    async def export_traces(request: Request) -> Response:
        media = _media_type(request)
        try:
            check_bearer(request.headers.get("authorization"), config.ingest_token)
            if media not in (JSON, PROTOBUF):
                raise UnsupportedMediaType(
                    f"Content-Type {media or 'missing'!r} is not supported; send {PROTOBUF} or {JSON}"
                )
            with budget.lease() as lease:
                body = await read_body(request, config.max_body_bytes, lease)
                pipeline.refuse_early()
                decoded = decode_json(body, config.window) if media == JSON else decode_protobuf(body, config.window)
                del body  # the payload holds its own copy; the lease counts one while it waits
                metrics.decoded("otlp_http", decoded.payload.spans, decoded.rejected, decoded.outside_window)
                await pipeline.submit(decoded.payload)
        except IngestError as exc:
            metrics.refuse("otlp_http", str(exc.http_status), exc.message)
            return _error(exc, media)
        metrics.accepted.labels("otlp_http").inc(decoded.payload.spans)
        return _message(decoded.response(), media, 200)

    return app


def _media_type(request: Request) -> str:
    return _media(request.headers.get("content-type", ""))


def _media(content_type: str) -> str:
    media = content_type.split(";")[0].strip().lower()
    return JSON if media == JSON else PROTOBUF if media in _PROTOBUF_TYPES else media


def _busy(scope: Scope, message: str) -> tuple[bytes, bytes]:
    """The answer to a request refused for the collector's request limit: a `Status` in the
    request's encoding, as the OTLP specification wants for every error."""
    content_type = dict(scope["headers"]).get(b"content-type", b"").decode("latin-1")
    status = Status(code=grpc.StatusCode.UNAVAILABLE.value[0], message=message)
    if _media(content_type) == JSON:
        return JSON.encode(), json_format.MessageToJson(status, indent=None).encode()
    return PROTOBUF.encode(), status.SerializeToString()


def _error(exc: IngestError, media: str) -> Response:
    status = Status(code=exc.grpc_code.value[0], message=exc.message)
    response = _message(status, media if media == JSON else PROTOBUF, exc.http_status)
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    return response


def _message(message: Message, media: str, status: int) -> Response:
    if media == JSON:
        return Response(json_format.MessageToJson(message, indent=None), status, media_type=JSON)
    return Response(message.SerializeToString(), status, media_type=PROTOBUF)
