"""Zipkin v2 ingest over HTTP: `POST /api/v2/spans` (JSON or protobuf, gzip), answered when durable.

Answers as a Zipkin server does: 202 with an empty body once the spans are durable, plain text
400/401/413/415 for bad input, 503 with `Retry-After` when overloaded. Never 202 before durability.
Never takes a browser's cross-site "simple" request (403): any web page could send one to 127.0.0.1.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import PlainTextResponse

from tracehouse.collector.admission import ByteBudget
from tracehouse.collector.auth import check_bearer
from tracehouse.collector.body import read_body
from tracehouse.collector.config import CollectorConfig
from tracehouse.collector.decoded import Decoded
from tracehouse.collector.errors import IngestError, MalformedPayload, UnsupportedMediaType
from tracehouse.collector.http_guard import RequestLimit
from tracehouse.collector.metrics import IngestMetrics
from tracehouse.collector.pipeline import Pipeline
from tracehouse.collector.zipkin import decode_zipkin_json, decode_zipkin_proto

log = logging.getLogger(__name__)


class CrossSiteRequest(IngestError):
    """A browser request from a web page without a CORS preflight (an `Origin` and no, or a
    safelisted, Content-Type): not a Zipkin reporter, which sends neither."""

    http_status = 403


JSON = "application/json"
PROTOBUF = "application/x-protobuf"
_DECODERS: dict[str, Callable[[bytes], Decoded]] = {
    # Zipkin servers read a body without Content-Type as JSON; so do we.
    "": decode_zipkin_json,
    JSON: decode_zipkin_json,
    PROTOBUF: decode_zipkin_proto,
    "application/protobuf": decode_zipkin_proto,
}
# What a page's `fetch(..., {mode: "no-cors"})` or form may send without a CORS preflight.
CORS_SAFELISTED = frozenset({"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"})
V1_REFUSED = (
    "Zipkin v1 spans are not accepted: POST Zipkin v2 spans to /api/v2/spans "
    "(Content-Type application/json or application/x-protobuf)\n"
)


def build_zipkin_app(
    pipeline: Pipeline,
    config: CollectorConfig,
    metrics: IngestMetrics | None = None,
    budget: ByteBudget | None = None,
) -> FastAPI:
    metrics = metrics or IngestMetrics()
    budget = budget or ByteBudget(config.max_inflight_bytes)
    app = FastAPI(title="Tracehouse Zipkin receiver", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(
        RequestLimit, limit=config.max_concurrent_requests, on_refused=lambda why: metrics.refuse("zipkin", "503", why)
    )

    @app.post("/api/v2/spans")
    async def post_spans(request: Request) -> Response:
        try:
            check_bearer(request.headers.get("authorization"), config.ingest_token)
            content_type = request.headers.get("content-type", "")
            _not_cross_site(request.headers.get("origin"), content_type)
            decode = _decoder(content_type)
            with budget.lease() as lease:
                body = await read_body(request, config.max_body_bytes, lease)
                pipeline.refuse_early()
                lease.reserve(2 * len(body))  # the decoded columns are Python objects, larger than the JSON
                decoded = decode(body).within(config.window)
                metrics.decoded("zipkin", len(decoded.batch), decoded.rejected, decoded.outside_window)
                _kept(decoded)
                await pipeline.submit(decoded.batch)
        except IngestError as exc:
            metrics.refuse("zipkin", str(exc.http_status), exc.message)
            return _error(exc)
        metrics.accepted.labels("zipkin").inc(len(decoded.batch))
        return Response(status_code=202)

    # A Zipkin server with v1 disabled answers 404 here too; the message says what to do.
    @app.post("/api/v1/spans")
    async def post_v1_spans() -> Response:
        return PlainTextResponse(V1_REFUSED, status_code=404)

    return app


def _not_cross_site(origin: str | None, content_type: str) -> None:
    """Zipkin reporters send no Origin; a body without Content-Type is read as JSON only from them."""
    if origin is not None and _media(content_type) in CORS_SAFELISTED:
        raise CrossSiteRequest(
            f"a browser request with an Origin and Content-Type {_media(content_type) or 'missing'!r} is refused: "
            f"any web page could send it; send {JSON} or {PROTOBUF}"
        )


def _media(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def _decoder(content_type: str) -> Callable[[bytes], Decoded]:
    media = _media(content_type)
    decoder = _DECODERS.get(media)
    if decoder is None:
        raise UnsupportedMediaType(
            f"Content-Type {media!r} is not supported; send {JSON} (Zipkin v2 JSON) or {PROTOBUF} (ListOfSpans)"
        )
    return decoder


def _kept(decoded: Decoded) -> Decoded:
    """Zipkin has no partial success: some spans kept is a 202 (and a warning here), none
    kept out of several is a 400 that says why."""
    if decoded.rejected and not len(decoded.batch):
        raise MalformedPayload(f"all {decoded.rejected} spans were rejected: {'; '.join(decoded.reasons)}")
    if decoded.rejected:
        log.warning(
            "Zipkin spans: kept %d, rejected %d: %s", len(decoded.batch), decoded.rejected, "; ".join(decoded.reasons)
        )
    return decoded


def _error(exc: IngestError) -> Response:
    response = PlainTextResponse(exc.message + "\n", status_code=exc.http_status)
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    return response
