"""What the reliability tier and its long variants (`benchmarks/reliability.py`) share: traces
whose span ids are known, senders that log which were acknowledged, what the store holds
afterwards, the server's memory peak.

Each request carries one trace; its span ids derive from the trace id, so the ledger needs
only trace ids. A request is *acknowledged* when it got HTTP 200 (202 for Zipkin) or gRPC OK,
*refused* when it got any other answer, *unsettled* when it got none (the connection died).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
from google.protobuf import json_format
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.e2e.server import Server, start_server

SERVICE = "reliability"
CHECK_KEY = "reliability.span"  # each span carries its own span id here: a torn row would not match
OPERATIONS = [f"op-{i}" for i in range(8)]
GRPC_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
RETRYABLE = frozenset({"429", "503", "UNAVAILABLE", "RESOURCE_EXHAUSTED"})
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class Trace:
    """One request's spans: a trace of `spans` spans, ids derived from the trace id."""

    trace_id: bytes
    spans: int
    padding: int = 0  # bytes of an extra attribute per span (payload-heavy spans)

    @classmethod
    def new(cls, spans: int, padding: int = 0) -> Trace:
        return cls(os.urandom(16), spans, padding)

    @property
    def key(self) -> str:
        return self.trace_id.hex()

    def span_ids(self) -> list[bytes]:
        return [self.trace_id[8:12] + i.to_bytes(4, "big") for i in range(1, self.spans + 1)]

    def otlp(self) -> ExportTraceServiceRequest:
        request = ExportTraceServiceRequest()
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=SERVICE)))
        spans = resource_spans.scope_spans.add().spans
        now = time.time_ns()
        for i, span_id in enumerate(self.span_ids()):
            span = spans.add(trace_id=self.trace_id, span_id=span_id, name=OPERATIONS[i % len(OPERATIONS)])
            span.start_time_unix_nano, span.end_time_unix_nano = now, now + 1000 + i
            span.attributes.append(KeyValue(key=CHECK_KEY, value=AnyValue(string_value=span_id.hex())))
            if self.padding:
                span.attributes.append(KeyValue(key="padding", value=AnyValue(string_value="p" * self.padding)))
        return request

    def otlp_json(self) -> bytes:
        """OTLP/JSON as the spec writes it: hex ids, int64 as strings."""
        document = json_format.MessageToDict(self.otlp())
        for span in document["resourceSpans"][0]["scopeSpans"][0]["spans"]:
            for key in ("traceId", "spanId"):
                span[key] = base64.b64decode(span[key]).hex()
        return json.dumps(document).encode()

    def zipkin_json(self) -> bytes:
        now_us = time.time_ns() // 1000
        padding = {"padding": "p" * self.padding} if self.padding else {}
        spans = [
            {
                "traceId": self.key,
                "id": span_id.hex(),
                "name": OPERATIONS[i % len(OPERATIONS)],
                "timestamp": now_us,
                "duration": 1 + i,
                "localEndpoint": {"serviceName": SERVICE},
                "tags": {CHECK_KEY: span_id.hex(), **padding},
            }
            for i, span_id in enumerate(self.span_ids())
        ]
        return json.dumps(spans).encode()


class OtlpTemplate:
    """Fresh OTLP protobuf bodies at memcpy speed: one request serialized once, then the new
    trace's ids patched in at the same offsets (ids and check values are fixed-length), so a
    load generator outruns the server on the same two cores."""

    def __init__(self, spans: int, padding: int = 0) -> None:
        self.spans, self.padding = spans, padding
        sample = Trace.new(spans, padding)
        self._body = sample.otlp().SerializeToString()
        self._trace_at = _offsets(self._body, sample.trace_id)
        self._span_at = [_offsets(self._body, span_id)[0] for span_id in sample.span_ids()]
        self._check_at = [_offsets(self._body, span_id.hex().encode())[0] for span_id in sample.span_ids()]

    def new(self) -> tuple[Trace, bytes]:
        trace = Trace.new(self.spans, self.padding)
        body = bytearray(self._body)
        for at in self._trace_at:
            body[at : at + 16] = trace.trace_id
        for span_id, span_at, check_at in zip(trace.span_ids(), self._span_at, self._check_at, strict=True):
            body[span_at : span_at + 8] = span_id
            body[check_at : check_at + 16] = span_id.hex().encode()
        return trace, bytes(body)


def _offsets(body: bytes, needle: bytes) -> list[int]:
    found, at = [], body.find(needle)
    while at >= 0:
        found.append(at)
        at = body.find(needle, at + 1)
    assert found, "template id not found"
    return found


# -- answers ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """What a sender learnt from one request: `status` is the HTTP status as text, a gRPC
    code name, or the transport error's class name when no answer came."""

    status: str
    acknowledged: bool
    answered: bool
    retry_after: float | None  # when a refusal said to retry (Retry-After / RetryInfo)
    seconds: float


@dataclass
class Ledger:
    """Thread-safe record of every request and its trace's fate."""

    spans: dict[str, int] = field(default_factory=dict)  # trace id -> spans sent
    acked: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    unsettled: list[str] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"acked": [], "refused": [], "unsettled": []})
    refusals_without_retry_after: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _acked_event: threading.Event = field(default_factory=threading.Event)
    _acked_target: int = 0

    def record(self, trace: Trace, answer: Answer) -> None:
        with self.lock:
            self.spans[trace.key] = trace.spans
            self.statuses[answer.status] += 1
            fate = "acked" if answer.acknowledged else "refused" if answer.answered else "unsettled"
            self.latencies[fate].append(answer.seconds)
            if answer.acknowledged:
                self.acked.append(trace.key)
                if len(self.acked) >= self._acked_target:
                    self._acked_event.set()
            elif answer.answered:
                self.refused.append(trace.key)
                if answer.retry_after is None and answer.status in RETRYABLE:
                    self.refusals_without_retry_after += 1
            else:
                self.unsettled.append(trace.key)

    def merge(self, other: Ledger) -> None:
        with self.lock:
            self.spans.update(other.spans)
            self.acked += other.acked
            self.refused += other.refused
            self.unsettled += other.unsettled
            self.statuses.update(other.statuses)
            for fate, seconds in other.latencies.items():
                self.latencies[fate] += seconds
            self.refusals_without_retry_after += other.refusals_without_retry_after

    def wait_for_acks(self, more: int, timeout: float) -> bool:
        """Block until `more` further requests have been acknowledged (False on timeout)."""
        with self.lock:
            self._acked_target = len(self.acked) + more
            self._acked_event.clear()
        return self._acked_event.wait(timeout)

    def acked_spans(self) -> int:
        return sum(self.spans[key] for key in self.acked)

    def to_json(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in _LEDGER_FIELDS}

    @classmethod
    def from_json(cls, document: dict[str, object]) -> Ledger:
        ledger = cls(**{name: document[name] for name in _LEDGER_FIELDS})  # type: ignore[arg-type]
        ledger.statuses = Counter(ledger.statuses)
        return ledger


_LEDGER_FIELDS = ("spans", "acked", "refused", "unsettled", "statuses", "latencies", "refusals_without_retry_after")

Send = Callable[[Trace], Answer]


def otlp_http_sender(client: httpx.Client, base: str, encoding: str = "protobuf") -> Send:
    """POST /v1/traces as protobuf, or as gzip'd OTLP/JSON."""
    url = f"{base}/v1/traces"

    def send(trace: Trace) -> Answer:
        if encoding == "protobuf":
            body, headers = trace.otlp().SerializeToString(), {"content-type": "application/x-protobuf"}
        else:
            body = gzip.compress(trace.otlp_json(), compresslevel=1)
            headers = {"content-type": "application/json", "content-encoding": "gzip"}
        return _http_answer(lambda: client.post(url, content=body, headers=headers), 200)

    return send


def zipkin_sender(client: httpx.Client, base: str) -> Send:
    url = f"{base}/api/v2/spans"

    def send(trace: Trace) -> Answer:
        body = trace.zipkin_json()
        return _http_answer(lambda: client.post(url, content=body, headers={"content-type": "application/json"}), 202)

    return send


def _http_answer(post: Callable[[], httpx.Response], ok: int) -> Answer:
    started = time.monotonic()
    try:
        response = post()
    except httpx.TransportError as exc:
        return Answer(type(exc).__name__, False, False, None, time.monotonic() - started)
    status = response.status_code
    retry_after = response.headers.get("retry-after", "")
    delay = float(retry_after) if retry_after.isdigit() else None
    return Answer(str(status), status == ok, True, delay, time.monotonic() - started)


def grpc_sender(channel: grpc.Channel, timeout: float = 60.0) -> Send:
    export = channel.unary_unary(GRPC_EXPORT, request_serializer=None, response_deserializer=None)

    def send(trace: Trace) -> Answer:
        body = trace.otlp().SerializeToString()
        started = time.monotonic()
        try:
            export(body, timeout=timeout)
        except grpc.RpcError as exc:
            code = exc.code()
            answered = code != grpc.StatusCode.DEADLINE_EXCEEDED
            return Answer(code.name, False, answered, _retry_delay(exc), time.monotonic() - started)
        return Answer("OK", True, True, None, time.monotonic() - started)

    return send


def _retry_delay(exc: grpc.RpcError) -> float | None:
    for key, value in exc.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for detail in Status.FromString(value).details:
                info = RetryInfo()
                if detail.Unpack(info):
                    return float(info.retry_delay.ToTimedelta().total_seconds())
    return None


def send_until(stop: threading.Event, send: Send, ledger: Ledger, spans: int, padding: int = 0) -> None:
    """Send new traces back to back until `stop`, honouring a refusal's retry delay as OTLP
    exporters do; after a transport error wait a moment, so a dead server is not hammered."""
    while not stop.is_set():
        trace = Trace.new(spans, padding)
        answer = send(trace)
        ledger.record(trace, answer)
        if not answer.acknowledged:
            stop.wait(answer.retry_after or 0.05)


class _Stale(Exception):
    """The connection closed before a byte of the answer."""


class RawHttpConnection:
    """A bare HTTP/1.1 keep-alive connection for load generation: a few syscalls per request,
    no client library in the way."""

    def __init__(self, base: str, timeout: float = 60.0) -> None:
        self.host, _, port = base.removeprefix("http://").partition(":")
        self.port = int(port)
        self.timeout = timeout
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, body: bytes, content_type: str) -> tuple[int, dict[str, str]]:
        """Status and headers (lower-case) of the answer; raises `OSError` when the connection dies
        and `TimeoutError` (an `OSError`) when no answer comes within `timeout` seconds. Like any
        HTTP client, a kept-alive connection the server closed while idle (not a byte of answer)
        is replaced and the request sent once more: the server never saw it."""
        reused = self._streams is not None
        try:
            return await self._exchange(path, body, content_type)
        except _Stale:
            if not reused:
                raise ConnectionError("the server closed a new connection without answering") from None
            return await self._exchange(path, body, content_type)

    async def _exchange(self, path: str, body: bytes, content_type: str) -> tuple[int, dict[str, str]]:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._streams
        head = f"POST {path} HTTP/1.1\r\nhost: {self.host}\r\ncontent-type: {content_type}\r\n"
        answered = False
        try:
            async with asyncio.timeout(self.timeout):
                writer.write(f"{head}content-length: {len(body)}\r\n\r\n".encode() + body)
                await writer.drain()
                status_line = await reader.readuntil(b"\r\n")
                answered = True
                lines = (status_line + await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
                await reader.readexactly(int(headers.get("content-length", "0")))
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionResetError, BrokenPipeError) as exc:
            self.close()
            if not answered:
                raise _Stale from None
            raise ConnectionError(f"the answer was cut short: {exc}") from None
        except OSError:  # TimeoutError included
            self.close()
            raise
        if headers.get("connection") == "close":
            self.close()
        return int(lines[0].split()[1]), headers

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


# -- the server and its store ---------------------------------------------------------------------


@contextmanager
def serving(data_dir: Path, *flags: str) -> Iterator[Server]:
    """A `tracehouse serve` that is always gone when the block ends (stopped, killed if need be)."""
    server = start_server(data_dir, "--log-level", "warning", *flags)
    try:
        yield server
    finally:
        if server.proc.poll() is None:
            server.stop()


COUNT_SCRIPT = """
import sys
from tracehouse.storage import StoreConfig, open_store
store = open_store(StoreConfig(dsn="chdb://" + sys.argv[1]))
rows = store.client().query(
    "SELECT TraceId, count(), uniqExact(SpanId), countIf(SpanAttributes[{check:String}] != SpanId) "
    "FROM otel_traces WHERE ServiceName = {service:String} GROUP BY TraceId",
    parameters={"check": sys.argv[2], "service": sys.argv[3]},
).result_rows
for row in rows:
    print(*row)
store.close()
"""


@dataclass(frozen=True, slots=True)
class StoredTrace:
    rows: int
    spans: int  # distinct span ids
    torn: int  # rows whose content does not match their id


def stored_traces(data_dir: Path) -> dict[str, StoredTrace]:
    """Every trace of the test service in the (stopped) server's embedded store."""
    counted = subprocess.run(
        [sys.executable, "-c", COUNT_SCRIPT, str(data_dir / "clickhouse"), CHECK_KEY, SERVICE],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert counted.returncode == 0, counted.stderr
    found = {}
    for line in counted.stdout.splitlines():
        trace, rows, spans, torn = line.split()
        found[trace] = StoredTrace(int(rows), int(spans), int(torn))
    return found


def contract_breaches(ledger: Ledger, stored: dict[str, StoredTrace]) -> list[str]:
    """What breaks the contract, empty when all holds: an acknowledged trace not stored whole
    and once; any trace stored partly, twice or torn; a refused trace stored; a trace stored
    that nobody sent."""

    def whole(key: str) -> bool:
        found = stored[key]
        return found.rows == found.spans == ledger.spans[key] and not found.torn

    acked, refused, unsettled = set(ledger.acked), set(ledger.refused), set(ledger.unsettled)
    breaches = {
        "acknowledged but not stored": acked - set(stored),
        "stored partly, twice or torn": {key for key in stored if key in ledger.spans and not whole(key)},
        "refused but stored": (refused - acked - unsettled) & set(stored),
        "stored but never sent": set(stored) - set(ledger.spans),
    }

    def shown(key: str) -> str:
        found = stored.get(key)
        fate = "acked" if key in acked else "refused" if key in refused else "unsettled" if key in unsettled else "?"
        if found is None:
            return f"{key} ({fate})"
        sent = ledger.spans.get(key, 0)
        return f"{key} ({fate}: {found.rows} rows, {found.spans} span ids, {found.torn} torn, {sent} sent)"

    return [
        f"{len(keys)} traces {what}, e.g. {[shown(key) for key in sorted(keys)[:3]]}"
        for what, keys in breaches.items()
        if keys
    ]


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM) so far."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for pid {pid}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")
