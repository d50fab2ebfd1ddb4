"""Hostile input on every listening port of one `tracehouse serve`: OTLP/HTTP (traces and
breaker stats), Zipkin, OTLP/gRPC, and the UI/API port. Truncated, oversized, gzip-bombed,
deeply nested, 10k attributes, 1 MB values, NUL and invalid UTF-8, wrong content types,
HTTP/2 / TLS / random bytes, gRPC garbage, huge Zipkin ids, slow-drip and header-bomb
clients. Nothing crashes; each answer is a precise 4xx (or a closed connection for bytes that
are not HTTP); the valid spans beside bad ones are stored; the server serves afterwards and
never logged an unhandled exception.

The server runs with short connection deadlines (2 s for headers, 3 s for bodies) so the
slow-drip cases end quickly; the defaults are 10 s and 30 s."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import socket
import time
from collections.abc import Callable, Iterator

import grpc
import httpx
import pytest
from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.e2e.server import Server
from tests.reliability.harness import GRPC_EXPORT, Trace, serving

pytestmark = pytest.mark.reliability

HEADER_TIMEOUT, BODY_TIMEOUT = 2.0, 3.0
MiB = 1024 * 1024
PROTOBUF = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}
NESTED = b"[" * 200_000 + b"]" * 200_000
NESTED_OBJECT = b'{"a":' * 200_000 + b"1" + b"}" * 200_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    flags = ("--header-timeout", str(HEADER_TIMEOUT), "--body-timeout", str(BODY_TIMEOUT))
    with serving(tmp_path_factory.mktemp("hostile") / "data", *flags) as running:
        yield running


@pytest.fixture(autouse=True)
def _still_serving(server: Server) -> Iterator[None]:
    """After each case: alive, answering, and no unhandled exception in its log."""
    yield
    assert server.proc.poll() is None, server.text()
    assert server.api("/healthz").status_code == 200
    for marker in ("Traceback", "Exception in ASGI application", "Internal Server Error"):
        assert marker not in server.text(), server.text()


def base(server: Server, port: str) -> str:
    return {"otlp": server.otlp_http, "zipkin": server.zipkin, "ui": server.ui}[port]


def host_port(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix("http://").partition(":")
    return host, int(port)


# -- HTTP requests with bad content: a precise 4xx on every route ---------------------------------

now_ns = time.time_ns()
OTLP_JSON_SPAN = (
    b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"%s","spanId":"%s","name":"n",'
    b'"startTimeUnixNano":"%s","endTimeUnixNano":"%d"}]}]}]}'
)

# (id, port, path, headers, body, status, what the answer must say)
BAD_REQUESTS: list[tuple[str, str, str, dict[str, str], Callable[[], bytes], int, str]] = [
    ("otlp truncated", "otlp", "/v1/traces", PROTOBUF, lambda: Trace.new(5).otlp().SerializeToString()[:-7], 400,
     "not a protobuf ExportTraceServiceRequest"),
    ("otlp random bytes", "otlp", "/v1/traces", PROTOBUF, lambda: os.urandom(4096), 400, "not a protobuf"),
    ("otlp oversized", "otlp", "/v1/traces", PROTOBUF, lambda: bytes(17 * MiB), 413, "larger than the limit"),
    ("otlp gzip bomb", "otlp", "/v1/traces", {**PROTOBUF, "content-encoding": "gzip"},
     lambda: gzip.compress(bytes(64 * MiB)), 413, "decompressed body is larger"),
    ("otlp gzip truncated", "otlp", "/v1/traces", {**PROTOBUF, "content-encoding": "gzip"},
     lambda: gzip.compress(Trace.new(5).otlp().SerializeToString())[:-9], 400, "gzip"),
    ("otlp deflate", "otlp", "/v1/traces", {**PROTOBUF, "content-encoding": "deflate"}, lambda: b"x", 415,
     "Content-Encoding 'deflate' is not supported"),
    ("otlp nested json", "otlp", "/v1/traces", JSON, lambda: NESTED, 400, "not valid JSON"),
    ("otlp nested json object", "otlp", "/v1/traces", JSON, lambda: NESTED_OBJECT, 400, "not valid JSON"),
    # invalid UTF-8 is replaced, as in protobuf bodies; what is left is still not a list of spans
    ("otlp json invalid utf-8", "otlp", "/v1/traces", JSON, lambda: b'{"resourceSpans":"\xff\xfe"}', 400,
     "Failed to parse resourceSpans field"),
    ("otlp json absurd timestamp", "otlp", "/v1/traces", JSON,
     lambda: OTLP_JSON_SPAN % (b"1" * 32, b"2" * 16, b"9" * 5000, now_ns), 400, "startTimeUnixNano"),
    ("otlp text/plain", "otlp", "/v1/traces", {"content-type": "text/plain"}, lambda: b"hello", 415,
     "'text/plain' is not supported"),
    ("otlp form", "otlp", "/v1/traces", {"content-type": "application/x-www-form-urlencoded"}, lambda: b"a=b", 415,
     "not supported"),
    ("otlp no content type", "otlp", "/v1/traces", {"content-type": ""}, lambda: b"\n\x00", 415, "'missing'"),
    ("breakers nested json", "otlp", "/v1/breakers", JSON, lambda: NESTED_OBJECT, 400, "not JSON"),
    ("breakers random bytes", "otlp", "/v1/breakers", JSON, lambda: os.urandom(512), 400, "not JSON"),
    ("breakers not a report", "otlp", "/v1/breakers", JSON, lambda: b"[1, 2]", 400, "must be a JSON object"),
    ("breakers bad sample", "otlp", "/v1/breakers", JSON,
     lambda: b'{"service":"s","instance":"i","samples":[{"name":"\\u0000"}]}', 400, "invalid breaker report"),
    ("breakers gzip bomb", "otlp", "/v1/breakers", {**JSON, "content-encoding": "gzip"},
     lambda: gzip.compress(b" " * (64 * MiB)), 413, "decompressed body is larger"),
    ("breakers protobuf", "otlp", "/v1/breakers", PROTOBUF, lambda: b"\n\x00", 415, "send application/json"),
    ("zipkin nested json", "zipkin", "/api/v2/spans", JSON, lambda: NESTED, 400, "not valid JSON"),
    ("zipkin huge trace id", "zipkin", "/api/v2/spans", JSON,
     lambda: json.dumps([{"traceId": "f" * 100_000, "id": "1" * 16, "name": "x"}]).encode(), 400,
     "is not 1 to 32 hex characters"),
    ("zipkin huge numeric id", "zipkin", "/api/v2/spans", JSON,
     lambda: b'[{"traceId":' + b"9" * 5000 + b',"id":"1111111111111111"}]', 400, "not valid JSON"),
    ("zipkin infinite duration", "zipkin", "/api/v2/spans", JSON,
     lambda: b'[{"traceId":"' + b"a" * 32 + b'","id":"' + b"1" * 16 + b'","timestamp":1,"duration":1e999}]', 400,
     "duration inf is not a finite number"),
    ("zipkin gzip bomb", "zipkin", "/api/v2/spans", {**JSON, "content-encoding": "gzip"},
     lambda: gzip.compress(b" " * (64 * MiB)), 413, "decompressed body is larger"),
    ("zipkin thrift", "zipkin", "/api/v2/spans", {"content-type": "application/x-thrift"}, lambda: b"\x0c", 415,
     "not supported"),
    ("zipkin bad protobuf", "zipkin", "/api/v2/spans", PROTOBUF, lambda: os.urandom(512), 400, "protobuf"),
    ("api post", "ui", "/api/v1/traces", JSON, lambda: NESTED, 404, "no such API endpoint"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("port", "path", "headers", "body", "status", "message"),
    [c[1:] for c in BAD_REQUESTS],
    ids=[c[0] for c in BAD_REQUESTS],
)
def test_bad_content_gets_a_precise_4xx(
    server: Server, port: str, path: str, headers: dict[str, str], body: Callable[[], bytes], status: int, message: str
) -> None:
    answer = httpx.post(base(server, port) + path, content=body(), headers=headers, timeout=60)
    assert answer.status_code == status, answer.content[:300]
    assert message in _message(answer), answer.content[:300]


def _message(answer: httpx.Response) -> str:
    if answer.headers.get("content-type", "").startswith("application/x-protobuf"):
        return Status.FromString(answer.content).message
    return answer.text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xff\x00", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"output": 1}', "'output'"),
        (b'{"output": "x.children", "inputs": {}}', "'inputs'"),
    ],
)
def test_dashboard_callback_garbage_is_a_400(server: Server, body: bytes, message: str) -> None:
    """Dash itself would answer these with a 500 (dashboard/callback_guard.py)."""
    answer = httpx.post(f"{server.ui}/_dash-update-component", content=body, headers=JSON, timeout=30)
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["error"]


@pytest.mark.parametrize(
    "query",
    [
        "service=%00%ff%fe",  # NUL and invalid UTF-8, percent-encoded
        "service=" + "a" * 60_000,
        "attr=%00%3D%00",
        "attr=k%3D~(unclosed",
        "attr=k%3D~" + "(a*)*" * 50 + "b",
        "attr=%27%29%20OR%201%3D1%20--",
        "limit=" + "9" * 40,
        "minDuration=1e400s",
        "start=" + "9" * 40,
        "end=-1",
        "service=a&service=b&limit=1&limit=2",
    ],
)
def test_hostile_query_strings_get_an_answer_not_a_500(server: Server, query: str) -> None:
    answer = httpx.get(f"{server.ui}/api/v1/traces?{query}", timeout=30)
    assert answer.status_code in (200, 400), answer.text[:300]
    assert answer.json()  # JSON either way


# -- valid neighbours survive ----------------------------------------------------------------------


def test_valid_spans_beside_hostile_ones_are_stored(server: Server) -> None:
    """One OTLP request: a plain span, a span of 10k attributes, one with a 1 MB value, one with
    NUL and invalid UTF-8 in its name, one with an all-zero id. All but the last are stored
    (attributes and values capped, text repaired); the last is counted in partial_success."""
    request = Trace.new(1).otlp()
    spans = request.resource_spans[0].scope_spans[0].spans
    good = spans[0]
    many = _copy_span(spans, good, "many attributes")
    many.attributes.extend(KeyValue(key=f"k{i}", value=AnyValue(string_value="v")) for i in range(10_000))
    huge = _copy_span(spans, good, "huge value")
    huge.attributes.append(KeyValue(key="huge", value=AnyValue(string_value="x" * MiB)))
    _copy_span(spans, good, "placeholder")  # its name is made dirty in the bytes below
    zero = _copy_span(spans, good, "zero id")
    zero.span_id = bytes(8)
    body = request.SerializeToString().replace(b"placeholder", b"nul\x00\xff\xfe!!!!!")  # same length
    answer = httpx.post(f"{server.otlp_http}/v1/traces", content=body, headers=PROTOBUF, timeout=30)
    assert answer.status_code == 200
    partial = ExportTraceServiceResponse.FromString(answer.content).partial_success
    assert (partial.rejected_spans, "span_id must be 8 bytes" in partial.error_message) == (1, True)

    stored = {s["name"]: s for s in server.api(f"/api/v1/traces/{good.trace_id.hex()}").json()["spans"]}
    assert set(stored) == {good.name, "many attributes", "huge value", "nul\x00\ufffd!!!!!"}
    assert 1000 <= len(stored["many attributes"]["attributes"]) < 10_000  # capped, the cut recorded
    assert "tracehouse.truncated" in stored["many attributes"]["attributes"]
    assert 0 < len(stored["huge value"]["attributes"]["huge"]) < MiB


def _copy_span(spans: object, template: Span, name: str) -> Span:
    span: Span = spans.add()  # type: ignore[attr-defined]
    span.CopyFrom(template)
    span.span_id, span.name = os.urandom(8), name
    return span


def test_json_with_a_lone_surrogate_keeps_its_spans(server: Server) -> None:
    """JSON's invalid UTF-8 is a lone surrogate escape: repaired like invalid UTF-8 in
    protobuf, not a reason to refuse the request and the valid span beside it."""
    trace = Trace.new(2)
    document = json.loads(trace.otlp_json())
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"] = "lone \ud800 surrogate"
    body = json.dumps(document).encode()  # ensure_ascii writes it as the escape \ud800
    answer = httpx.post(f"{server.otlp_http}/v1/traces", content=body, headers=JSON, timeout=30)
    assert answer.status_code == 200, answer.text
    names = {s["name"] for s in server.api(f"/api/v1/traces/{trace.key}").json()["spans"]}
    assert names == {"lone \ufffd surrogate", "op-1"}


def test_zipkin_valid_span_beside_a_huge_id_is_stored(server: Server) -> None:
    trace = Trace.new(1)
    spans = [*json.loads(trace.zipkin_json()), {"traceId": "a" * 10_000, "id": "b" * 10_000, "name": "huge"}]
    spans[0]["name"] = "nul \x00 and \udcff"
    body = json.dumps(spans).encode()
    answer = httpx.post(f"{server.zipkin}/api/v2/spans", content=body, headers=JSON, timeout=30)
    assert answer.status_code == 202, answer.text
    stored = server.api(f"/api/v1/traces/{trace.key}").json()["spans"]
    assert [s["name"] for s in stored] == ["nul \x00 and ?"]  # the Zipkin decoder replaces with '?'


# -- gRPC -------------------------------------------------------------------------------------------


def grpc_cases() -> list[tuple[str, Callable[[Callable[..., bytes]], object], grpc.StatusCode, str]]:
    bomb = b"\n\x00" * (32 * MiB)
    return [
        ("random bytes", lambda call: call(os.urandom(4096)), grpc.StatusCode.INVALID_ARGUMENT, "not a protobuf"),
        ("truncated", lambda call: call(Trace.new(5).otlp().SerializeToString()[:-7]),
         grpc.StatusCode.INVALID_ARGUMENT, "not a protobuf"),
        ("oversized", lambda call: call(bytes(17 * MiB)), grpc.StatusCode.RESOURCE_EXHAUSTED, "larger than max"),
        ("gzip bomb", lambda call: call(bomb, compression=grpc.Compression.Gzip),
         grpc.StatusCode.RESOURCE_EXHAUSTED, "larger than max"),
        ("huge metadata", lambda call: call(b"", metadata=[("x-big", "a" * MiB)]),
         grpc.StatusCode.RESOURCE_EXHAUSTED, "metadata"),
    ]  # fmt: skip


@pytest.mark.parametrize(("make", "code", "message"), [c[1:] for c in grpc_cases()], ids=[c[0] for c in grpc_cases()])
def test_grpc_hostile_requests_get_precise_codes(
    server: Server, make: Callable[[Callable[..., bytes]], object], code: grpc.StatusCode, message: str
) -> None:
    with grpc.insecure_channel(server.otlp_grpc, options=[("grpc.max_send_message_length", -1)]) as channel:
        export = channel.unary_unary(GRPC_EXPORT, request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as raised:
            make(lambda body, **kw: export(body, timeout=60, **kw))
    assert raised.value.code() == code
    assert message in (raised.value.details() or "")


def test_grpc_unknown_methods_and_valid_neighbours(server: Server) -> None:
    trace = Trace.new(2)
    request = trace.otlp()
    request.resource_spans[0].scope_spans[0].spans[1].trace_id = bytes(16)
    with grpc.insecure_channel(server.otlp_grpc) as channel:
        for method in ("/opentelemetry.proto.collector.trace.v1.TraceService/Nope", "/x.Y/Z"):
            unknown = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
            with pytest.raises(grpc.RpcError) as raised:
                unknown(b"", timeout=30)
            assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
        export = channel.unary_unary(GRPC_EXPORT, request_serializer=None, response_deserializer=None)
        answer = ExportTraceServiceResponse.FromString(export(request.SerializeToString(), timeout=30))
    assert answer.partial_success.rejected_spans == 1
    assert len(server.api(f"/api/v1/traces/{trace.key}").json()["spans"]) == 1


# -- bytes that are not (good) HTTP ------------------------------------------------------------------

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"
TLS_HELLO = bytes.fromhex("16030100a5010000a10303") + bytes(32) + b"\x00" * 20
NOT_HTTP = {
    "random bytes": os.urandom(4096),
    "http/2 preface": PREFACE + os.urandom(64),
    "tls client hello": TLS_HELLO,
    "nul in request line": b"GET /\x00 HTTP/1.1\r\nhost: x\r\n\r\n",
    "content-length and chunked": b"POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n"
    b"transfer-encoding: chunked\r\n\r\n0\r\n\r\n",
    "negative content-length": b"POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-length: -5\r\n\r\n",
    "huge content-length": b"POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-length: " + b"9" * 30 + b"\r\n\r\n",
    "bad chunk size": b"POST /v1/traces HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n",
}


def exchange(url: str, data: bytes, timeout: float = 15.0) -> tuple[bytes, bool]:
    """Send `data`, read until the server closes (True) or `timeout` passes (False)."""
    with socket.create_connection(host_port(url), timeout=timeout) as sock:
        with contextlib.suppress(OSError):  # the server may close while a large send is still going
            sock.sendall(data)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except TimeoutError:
            return received, False
        except ConnectionResetError:
            pass
    return received, True


@pytest.mark.parametrize("port", ["otlp", "zipkin", "ui"])
@pytest.mark.parametrize("case", NOT_HTTP)
def test_not_http_gets_a_400_and_a_closed_connection(server: Server, port: str, case: str) -> None:
    received, closed = exchange(base(server, port), NOT_HTTP[case])
    assert closed
    assert received.startswith(b"HTTP/1.1 400 "), received[:200]


@pytest.mark.parametrize("case", ["random bytes", "http/2 preface", "tls client hello", "nul in request line"])
def test_not_grpc_on_the_grpc_port_closes_the_connection(server: Server, case: str) -> None:
    _, closed = exchange(f"http://{server.otlp_grpc}", NOT_HTTP[case])
    assert closed


@pytest.mark.parametrize("port", ["otlp", "zipkin", "ui"])
@pytest.mark.parametrize(
    "head",
    [
        b"GET /healthz HTTP/1.1\r\nx-big: " + b"a" * (4 * MiB) + b"\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\n" + b"".join(b"x-%d: a\r\n" % i for i in range(200_000)) + b"\r\n",
        b"GET /" + b"a" * (4 * MiB) + b" HTTP/1.1\r\n\r\n",
    ],
    ids=["one huge header", "200k headers", "huge url"],
)
def test_a_header_bomb_is_cut_off_with_431(server: Server, port: str, head: bytes) -> None:
    """Heads are capped (64 KiB): uvicorn alone buffers any amount (4 GB RSS from one client)."""
    received, closed = exchange(base(server, port), head)
    assert closed
    assert received.startswith(b"HTTP/1.1 431 "), received[:200]


# -- slow clients ------------------------------------------------------------------------------------


async def _drip(url: str, head: bytes, drip: bytes) -> tuple[bytes, float]:
    """Send `head` at once, then `drip` a byte a second until the server answers and closes;
    returns what it said and after how many seconds."""
    reader, writer = await asyncio.open_connection(*host_port(url))
    started = time.monotonic()
    writer.write(head)
    answer = asyncio.ensure_future(reader.read())  # until EOF
    try:
        for byte in drip:
            done, _ = await asyncio.wait([answer], timeout=1.0)  # the pace of the drip
            if done:
                break
            writer.write(bytes([byte]))
        return await asyncio.wait_for(answer, 30), time.monotonic() - started
    finally:
        writer.close()


#: Where each port reads a body: the ingest route, or the dashboard's callback route.
BODY_PATH = {"otlp": b"/v1/traces", "zipkin": b"/api/v2/spans", "ui": b"/_dash-update-component"}
SLOW = {
    "silent connection": (b"", b""),
    "request line a byte a second": (b"", b"POST /v1/traces HTTP/1.1\r\nhost: x\r\n" * 10),
    "headers a byte a second": (b"POST /v1/traces HTTP/1.1\r\n", b"x-slow: " + b"a" * 100),
    "body a byte a second": (
        b"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 16777216\r\n\r\n",
        b"[" * 100,
    ),
}


@pytest.mark.parametrize("port", ["otlp", "zipkin", "ui"])
def test_slow_clients_are_cut_off_and_hold_nothing(server: Server, port: str) -> None:
    """Every kind of slow client on every HTTP port at once — with 20 of the 16 MiB body
    drippers, more than the ingest byte budget holds — gets a 408 within its deadline and its
    connection closed; meanwhile and afterwards the port serves normal requests."""

    async def scenario() -> list[tuple[str, bytes, float]]:
        url = base(server, port)
        kinds = [kind for kind in SLOW for _ in range(20 if kind == "body a byte a second" else 1)]
        heads = {kind: SLOW[kind][0].replace(b"{path}", BODY_PATH[port]) for kind in SLOW}
        slow = [asyncio.ensure_future(_drip(url, heads[kind], SLOW[kind][1])) for kind in kinds]
        await asyncio.sleep(0.5)  # let them all connect and start dripping
        async with httpx.AsyncClient(timeout=30) as client:
            probe = await client.get(f"{server.ui}/healthz") if port == "ui" else await _valid_post(client, url, port)
        assert probe.status_code in (200, 202, 503), probe.text
        if probe.status_code == 503:
            assert probe.headers["retry-after"] == "1"  # the budget is held until the deadline, no longer
        answers = await asyncio.gather(*slow)
        return [(kind, received, seconds) for kind, (received, seconds) in zip(kinds, answers, strict=True)]

    refused_at_once = 0
    for kind, received, seconds in asyncio.run(scenario()):
        if received.startswith(b"HTTP/1.1 503 ") and kind == "body a byte a second" and port != "ui":
            refused_at_once += 1  # the byte budget was full of the other drippers' reservations
            assert b"retry-after: 1" in received
            continue
        assert received.startswith(b"HTTP/1.1 408 "), (kind, received[:200])
        limit = HEADER_TIMEOUT if "body" not in kind else HEADER_TIMEOUT + BODY_TIMEOUT
        assert seconds < limit + 5, (kind, seconds)  # the deadline, plus a loaded machine's lag
    assert refused_at_once <= 4  # 256 MiB holds 16 declared 16 MiB bodies
    assert asyncio.run(_after(server, port)).status_code in (200, 202)


async def _valid_post(client: httpx.AsyncClient, url: str, port: str) -> httpx.Response:
    trace = Trace.new(3)
    if port == "zipkin":
        return await client.post(f"{url}/api/v2/spans", content=trace.zipkin_json(), headers=JSON)
    return await client.post(f"{url}/v1/traces", content=trace.otlp().SerializeToString(), headers=PROTOBUF)


async def _after(server: Server, port: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        if port == "ui":
            return await client.get(f"{server.ui}/api/v1/services")
        return await _valid_post(client, base(server, port), port)


def test_more_idle_connections_than_requests_admitted_do_not_lock_out_senders(server: Server) -> None:
    """1,100 connections that say nothing (more than the 1,024 requests the collector admits):
    a sender on connection 1,101 is served, and the idle ones are closed at the header deadline."""
    idle = [socket.create_connection(host_port(server.otlp_http)) for _ in range(1100)]
    try:
        trace = Trace.new(3)
        answer = httpx.post(
            f"{server.otlp_http}/v1/traces", content=trace.otlp().SerializeToString(), headers=PROTOBUF, timeout=30
        )
        assert answer.status_code == 200, answer.text
        idle[0].settimeout(HEADER_TIMEOUT + 5)
        assert idle[0].recv(100).startswith(b"HTTP/1.1 408 ")
    finally:
        for sock in idle:
            sock.close()


def test_json_answer_of_a_refusal_is_otlp_json(server: Server) -> None:
    """A refusal in OTLP/JSON is a google.rpc.Status the exporter can read."""
    answer = httpx.post(f"{server.otlp_http}/v1/traces", content=b"{nope", headers=JSON, timeout=30)
    assert answer.status_code == 400
    status = json_format.Parse(answer.text, Status())
    assert "not valid JSON" in status.message


# -- exposure by default ------------------------------------------------------------------------------


def _outward_address() -> str | None:
    """This host's address on its default route (no packet is sent), or None without one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: routing only
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_listeners_bind_loopback_by_default_and_allow_no_cross_origin_reads(server: Server) -> None:
    """Without --host every listener is on 127.0.0.1; no route answers CORS (a page on another
    origin cannot read the API or post spans from a browser)."""
    urls = [server.otlp_http, server.zipkin, server.ui, f"http://{server.otlp_grpc}"]
    assert all(host_port(url)[0] == "127.0.0.1" for url in urls)
    outward = _outward_address()
    if outward is not None:
        for url in urls:
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((outward, host_port(url)[1]), timeout=5).close()
    evil = {"origin": "https://evil.example", "access-control-request-method": "POST"}
    for url in (f"{server.ui}/api/v1/services", f"{server.otlp_http}/v1/traces", f"{server.zipkin}/api/v2/spans"):
        for answer in (httpx.options(url, headers=evil, timeout=10), httpx.get(url, headers=evil, timeout=10)):
            assert not any(name.startswith("access-control-") for name in answer.headers), (url, answer.headers)
