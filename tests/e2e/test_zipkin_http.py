"""End to end: the Zipkin receiver under a real uvicorn server on a loopback port, a real
`Pipeline` over the real embedded store; Brave/Sleuth fixtures POSTed with httpx (plain,
gzip, protobuf) and by OpenTelemetry's Zipkin exporter, then read back with `get_trace`."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from tracehouse.collector import CollectorConfig, Pipeline
from tracehouse.collector import _zipkin_pb2 as pb
from tracehouse.collector.zipkin import decode_zipkin_json
from tracehouse.collector.zipkin_http import build_zipkin_app
from tracehouse.storage import ClickHouseStore, Span, SpanBatch, StoreConfig

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).parents[1] / "fixtures" / "zipkin"
FIXTURE_NAMES = sorted(p.name for p in FIXTURES.glob("*.json"))
LIMIT = 64 * 1024


@pytest.fixture
def store_config(chdb_dir: Path) -> StoreConfig:
    """The conftest's store, kept ten years: the fixtures carry fixed 2025 timestamps, and a
    background TTL merge may drop parts older than the default 7 days at any moment."""
    return StoreConfig(dsn=f"chdb://{chdb_dir}?database=t_{uuid.uuid4().hex[:12]}", ttl_days=3650)


class Receiver:
    """`build_zipkin_app` served by uvicorn in a thread of its own, with its own event loop
    that also runs the pipeline. The socket is bound and listening before the thread starts,
    so requests can be sent at once (they wait in the backlog)."""

    def __init__(self, store: ClickHouseStore, config: CollectorConfig) -> None:
        self.pipeline = Pipeline(store, config)
        app = build_zipkin_app(self.pipeline, config)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", ws="none"))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, name="zipkin-receiver")
        self.thread.start()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self.errors.append(exc)

    async def _serve(self) -> None:
        flusher = asyncio.create_task(self.pipeline.run())
        try:
            await self.server.serve(sockets=[self.sock])
        finally:
            await self.pipeline.close()
            await flusher

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()
        assert not self.thread.is_alive(), "the receiver did not stop"
        assert not self.errors, self.errors


@pytest.fixture
def start_receiver(store: ClickHouseStore) -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(**settings: Any) -> Receiver:
        # the fixtures carry fixed 2025 timestamps: accept spans as old as the store keeps them
        settings.setdefault("max_span_age", store.config.ttl_days * 86400.0)
        config = CollectorConfig(max_body_bytes=LIMIT, flush_interval=0.01, **settings)
        config.validate()
        started.append(Receiver(store, config))
        return started[-1]

    yield start
    for receiver in started:
        receiver.stop()


@pytest.fixture
def client(start_receiver: Callable[..., Receiver]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=start_receiver().url, timeout=30) as http:
        yield http


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def order(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return row[0], row[2], row[5]  # timestamp, span id, kind: unique even for shared halves


def projection(spans: list[Span]) -> list[tuple[Any, ...]]:
    rows = [
        (
            s.timestamp_ns,
            s.trace_id,
            s.span_id,
            s.parent_span_id,
            s.name,
            s.kind,
            s.service_name,
            s.resource_attributes,
            s.scope_name,
            s.attributes,
            s.duration_ns,
            s.status_code,
            s.status_message,
            [(e.timestamp_ns, e.name, e.attributes) for e in s.events],
            len(s.links),
        )
        for s in spans
    ]
    return sorted(rows, key=order)


def expected(batch: SpanBatch) -> list[tuple[Any, ...]]:
    b = batch
    rows = [
        (
            b.timestamp_ns[i],
            b.trace_id[i],
            b.span_id[i],
            b.parent_span_id[i],
            b.span_name[i],
            b.span_kind[i],
            b.service_name[i],
            b.resource_attributes[i],
            b.scope_name[i],
            b.span_attributes[i],
            b.duration_ns[i],
            b.status_code[i],
            b.status_message[i],
            list(zip(b.event_timestamp_ns[i], b.event_name[i], b.event_attributes[i], strict=True)),
            len(b.link_trace_id[i]),
        )
        for i in range(len(b))
    ]
    return sorted(rows, key=order)


def stored(store: ClickHouseStore, payload: bytes) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """What the store holds for the traces in `payload`, and what the decoder made of it."""
    batch = decode_zipkin_json(payload).batch
    spans = [s for trace_id in sorted(set(batch.trace_id)) for s in store.get_trace(trace_id)]
    return projection(spans), expected(batch)


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_brave_fixture_lands_with_every_field(
    name: str, gzipped: bool, client: httpx.Client, store: ClickHouseStore
) -> None:
    payload = fixture(name)
    headers = {"Content-Type": "application/json"}
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    response = client.post("/api/v2/spans", content=gzip.compress(payload) if gzipped else payload, headers=headers)
    assert (response.status_code, response.content) == (202, b"")
    got, want = stored(store, payload)
    assert got == want
    assert len(got) == len(json.loads(payload))


def test_shared_rpc_halves_are_both_stored(client: httpx.Client, store: ClickHouseStore) -> None:
    response = client.post("/api/v2/spans", content=fixture("sleuth_64bit_shared_rpc.json"))
    assert response.status_code == 202
    spans = store.get_trace("00000000000000005af7183fb1d4cf5f")
    halves = [s for s in spans if s.span_id == "6b221d5bc9e6496c"]
    assert sorted((s.kind, s.service_name, s.attributes.get("zipkin.shared")) for s in halves) == [
        ("Client", "frontend", None),
        ("Server", "backend", "true"),
    ]


def test_protobuf_body(client: httpx.Client, store: ClickHouseStore) -> None:
    item = pb.Span(
        trace_id=bytes.fromhex("463ac35c9f6413ad48485a3953bb6125"),
        id=bytes.fromhex("00000000000000aa"),
        kind=pb.Span.CLIENT,
        name=b"get",
        timestamp=1764086405000000,
        duration=42,
        local_endpoint=pb.Endpoint(service_name=b"web", ipv4=bytes([10, 0, 0, 1])),
        remote_endpoint=pb.Endpoint(service_name=b"api", ipv4=bytes([10, 0, 0, 2]), port=443),
        tags=[pb.Tag(key=b"http.path", value=b"/x")],
    )
    body = gzip.compress(pb.ListOfSpans(spans=[item]).SerializeToString())
    headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
    assert client.post("/api/v2/spans", content=body, headers=headers).status_code == 202
    (got,) = store.get_trace("463ac35c9f6413ad48485a3953bb6125")
    assert (got.kind, got.service_name, got.duration_ns) == ("Client", "web", 42_000)
    assert got.attributes == {
        "http.path": "/x",
        "peer.service": "api",
        "network.peer.address": "10.0.0.2",
        "network.peer.port": "443",
        "server.address": "10.0.0.2",
        "server.port": "443",
    }


def test_missing_content_type_is_json(client: httpx.Client, store: ClickHouseStore) -> None:
    payload = fixture("brave_local_span.json")
    response = client.post("/api/v2/spans", content=payload, headers={"Content-Type": ""})
    assert response.status_code == 202
    assert [s.name for s in store.get_trace("00000000000000002b8d4e6f10325476")] == ["compute-price"]


def test_some_spans_rejected_is_still_202(
    client: httpx.Client, store: ClickHouseStore, caplog: pytest.LogCaptureFixture
) -> None:
    good = json.loads(fixture("brave_messaging.json"))
    payload = json.dumps([good[0], {"traceId": "nothex", "id": "1"}, good[1]]).encode()
    with caplog.at_level(logging.WARNING, logger="tracehouse.collector.zipkin_http"):
        assert client.post("/api/v2/spans", content=payload).status_code == 202
    assert len(store.get_trace("00000000000000001f0e2d3c4b5a6978")) == 2
    assert "kept 2, rejected 1: span 1: traceId 'nothex' is not 1 to 32 hex characters" in caplog.text


BAD = [
    ("not JSON", b"[{", {}, 400, "body is not valid JSON"),
    ("not a list", b'{"spans":[]}', {}, 400, "must be a JSON array of Zipkin v2 spans, not a JSON object"),
    ("empty", b"", {}, 400, "body is empty"),
    ("all rejected", b'[{"traceId":"0","id":"1"}]', {}, 400, "all 1 spans were rejected: span 0: traceId is all zeros"),
    ("bad protobuf", b"\xff\xff", {"Content-Type": "application/x-protobuf"}, 400, "not a protobuf Zipkin ListOfSpans"),
    ("bad gzip", b"nope", {"Content-Encoding": "gzip"}, 400, "body is not valid gzip"),
    ("thrift", b"\x0c", {"Content-Type": "application/x-thrift"}, 415, "'application/x-thrift' is not supported"),
    ("brotli", b"[]", {"Content-Encoding": "br"}, 415, "Content-Encoding 'br' is not supported"),
    ("too large", b"[" + b" " * LIMIT + b"]", {}, 413, f"larger than the limit of {LIMIT} bytes"),
    ("gzip bomb", gzip.compress(b"[" + b" " * (LIMIT * 10) + b"]"), {"Content-Encoding": "gzip"}, 413, "decompressed"),
]


@pytest.mark.parametrize(("payload", "headers", "status", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_gets_a_precise_answer(
    payload: bytes, headers: dict[str, str], status: int, message: str, client: httpx.Client
) -> None:
    response = client.post("/api/v2/spans", content=payload, headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/plain")
    assert message in response.text


def test_v1_endpoint_says_to_use_v2(client: httpx.Client) -> None:
    response = client.post("/api/v1/spans", content=b"[]")
    assert response.status_code == 404
    assert "POST Zipkin v2 spans to /api/v2/spans" in response.text


def test_a_request_larger_than_the_queue_is_413(start_receiver: Callable[..., Receiver]) -> None:
    """Retrying could never help, so it is not a 503 (the retryable 503 is tested in
    tests/integration/test_admission.py and test_pipeline.py)."""
    receiver = start_receiver(flush_spans=2, max_queued_spans=2)
    response = httpx.post(f"{receiver.url}/api/v2/spans", content=fixture("sleuth_64bit_shared_rpc.json"), timeout=30)
    assert response.status_code == 413
    assert "more than the queue holds (2)" in response.text


def test_opentelemetry_zipkin_exporter(client: httpx.Client, store: ClickHouseStore) -> None:
    """OpenTelemetry's own Zipkin exporter (JSON v2 over HTTP) as a real, separate sender."""
    from opentelemetry import trace
    from opentelemetry.exporter.zipkin import json as zipkin_json
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "py-sender"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("e2e.zipkin", "1.0")
    with tracer.start_as_current_span("GET /pay", kind=trace.SpanKind.SERVER, attributes={"http.status": 500}) as root:
        root.add_event("retry")
        with tracer.start_as_current_span("charge", kind=trace.SpanKind.CLIENT) as charge:
            charge.set_status(trace.Status(trace.StatusCode.ERROR, "card declined"))
    provider.shutdown()

    exporter = zipkin_json.ZipkinExporter(endpoint=str(client.base_url.join("/api/v2/spans")))
    try:
        assert exporter.export(memory.get_finished_spans()) == SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    spans = {s.name: s for s in store.get_trace(format(root.get_span_context().trace_id, "032x"))}
    assert set(spans) == {"GET /pay", "charge"}
    pay, stored_charge = spans["GET /pay"], spans["charge"]
    assert (pay.kind, stored_charge.kind) == ("Server", "Client")
    assert stored_charge.parent_span_id == pay.span_id == format(root.get_span_context().span_id, "016x")
    assert (stored_charge.status_code, stored_charge.status_message) == ("Error", "card declined")
    assert {pay.service_name, stored_charge.service_name} == {"py-sender"}
    assert (pay.scope_name, pay.scope_version) == ("e2e.zipkin", "1.0")
    assert pay.attributes["http.status"] == "500"
    assert [e.name for e in pay.events] == ['{"retry": {}}']


def test_ingest_token_is_required_when_set(start_receiver: Callable[..., Receiver], store: ClickHouseStore) -> None:
    url = f"{start_receiver(ingest_token='s3cret-token').url}/api/v2/spans"
    payload = fixture("brave_local_span.json")
    refused = httpx.post(url, content=payload, headers={"Authorization": "Bearer wrong"}, timeout=30)
    assert (refused.status_code, refused.text) == (401, "the ingest token is not valid\n")
    assert httpx.post(url, content=payload, timeout=30).status_code == 401
    accepted = httpx.post(url, content=payload, headers={"Authorization": "Bearer s3cret-token"}, timeout=30)
    assert accepted.status_code == 202
    assert len(store.get_trace("00000000000000002b8d4e6f10325476")) == 1
