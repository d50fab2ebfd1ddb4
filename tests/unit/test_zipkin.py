"""Zipkin v2 decoding: byte-exact Brave/Sleuth fixtures, every mapping rule, spans rejected one
by one, malformed bodies, protobuf decoding to the same columns as JSON, and a fuzz test."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from hypothesis import given, settings
from hypothesis import strategies as st

from tracehouse.collector import MalformedPayload
from tracehouse.collector import _zipkin_pb2 as pb
from tracehouse.collector.zipkin import decode_zipkin_json, decode_zipkin_proto
from tracehouse.storage import COLUMNS, SpanBatch

FIXTURES = Path(__file__).parents[1] / "fixtures" / "zipkin"
FIXTURE_NAMES = sorted(p.name for p in FIXTURES.glob("*.json"))
DROP = object()  # as a field value in `one()`: leave the field out
BASE: dict[str, Any] = {
    "traceId": "5af7183fb1d4cf5f",
    "id": "6b221d5bc9e6496c",
    "name": "get",
    "timestamp": 1764086400000000,
    "duration": 1500,
    "localEndpoint": {"serviceName": "frontend"},
}
PADDED_TRACE = "00000000000000005af7183fb1d4cf5f"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def span(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in {**BASE, **fields}.items() if v is not DROP}


def body(*spans: Any) -> bytes:
    return json.dumps(list(spans)).encode()


def row(batch: SpanBatch, index: int = 0) -> dict[str, Any]:
    """One span of `batch` by `otel_traces` column name."""
    return {name: column[index] for name, column in zip(COLUMNS, batch.columns(), strict=True)}


def one(**fields: Any) -> dict[str, Any]:
    decoded = decode_zipkin_json(body(span(**fields)))
    assert decoded.rejected == 0, decoded.reasons
    return row(decoded.batch)


# -- fixtures as Brave / Sleuth send them -------------------------------------------


def test_sleuth_shared_rpc_keeps_both_halves() -> None:
    decoded = decode_zipkin_json(fixture("sleuth_64bit_shared_rpc.json"))
    assert decoded.rejected == 0
    root, client, server = (row(decoded.batch, i) for i in range(3))
    assert {root["TraceId"], client["TraceId"], server["TraceId"]} == {PADDED_TRACE}
    assert root["ParentSpanId"] == ""
    assert client["SpanId"] == server["SpanId"] == "6b221d5bc9e6496c"
    assert client["ParentSpanId"] == server["ParentSpanId"] == "5af7183fb1d4cf5f"
    assert (client["SpanKind"], client["ServiceName"]) == ("Client", "frontend")
    assert (server["SpanKind"], server["ServiceName"]) == ("Server", "backend")
    assert server["SpanAttributes"]["zipkin.shared"] == "true"
    assert "zipkin.shared" not in client["SpanAttributes"]
    assert client["SpanAttributes"] == {
        "http.method": "GET",
        "http.path": "/api",
        "network.peer.address": "192.168.99.2",
        "network.peer.port": "9000",
        "server.address": "192.168.99.2",
        "server.port": "9000",
    }
    assert server["SpanAttributes"]["client.address"] == "192.168.99.1"
    assert server["ResourceAttributes"] == {
        "service.name": "backend",
        "host.ip": "192.168.99.2",
        "net.host.port": "9000",
    }
    assert (server["Timestamp"], server["Duration"]) == (1764086400162000000, 125000000)


def test_brave_128bit_trace_with_annotations() -> None:
    decoded = decode_zipkin_json(fixture("brave_128bit_annotations.json"))
    server = row(decoded.batch)
    assert server["TraceId"] == "463ac35c9f6413ad48485a3953bb6124"
    assert server["SpanId"] == "0020000000000001"
    assert server["Events.Name"] == ["wr", "cache.miss", "ws"]
    assert server["Events.Timestamp"] == [1764086401000210000, 1764086401011000000, 1764086401023400000]
    assert server["Events.Attributes"] == [{}, {}, {}]
    assert server["ResourceAttributes"]["host.ip"] == "2001:db8::c001"
    assert server["SpanAttributes"]["zipkin.debug"] == "true"
    assert server["StatusCode"] == "Unset"


def test_brave_client_error_with_remote_service() -> None:
    client = row(decode_zipkin_json(fixture("brave_client_error.json")).batch)
    assert (client["StatusCode"], client["StatusMessage"]) == ("Error", "Communications link failure")
    assert client["SpanAttributes"]["error"] == "Communications link failure"
    assert client["SpanAttributes"]["peer.service"] == "mysql"
    assert (client["SpanAttributes"]["server.address"], client["SpanAttributes"]["server.port"]) == ("10.0.3.4", "3306")


def test_brave_local_span_and_messaging() -> None:
    local = row(decode_zipkin_json(fixture("brave_local_span.json")).batch)
    assert local["SpanKind"] == "Unspecified"
    assert local["SpanAttributes"] == {"class": "PricingService", "method": "computePrice"}
    messaging = decode_zipkin_json(fixture("brave_messaging.json")).batch
    producer, consumer = row(messaging, 0), row(messaging, 1)
    assert (producer["SpanKind"], consumer["SpanKind"]) == ("Producer", "Consumer")
    assert consumer["ParentSpanId"] == producer["SpanId"]
    assert producer["SpanAttributes"]["peer.service"] == consumer["SpanAttributes"]["peer.service"] == "kafka"
    assert "server.address" not in producer["SpanAttributes"]


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_every_fixture_column_is_filled_consistently(name: str) -> None:
    decoded = decode_zipkin_json(fixture(name))
    assert decoded.rejected == 0
    assert len({len(column) for column in decoded.batch.columns()}) == 1
    assert all(row(decoded.batch, i)["ScopeName"] == "" for i in range(len(decoded.batch)))


# -- every mapping rule ---------------------------------------------------------------

MAPPING = [
    ("64-bit trace id padded, lowercased", {"traceId": "5AF7183FB1D4CF5F"}, {"TraceId": PADDED_TRACE}),
    (
        "128-bit trace id kept",
        {"traceId": "463ac35c9f6413ad48485a3953bb6124"},
        {"TraceId": "463ac35c9f6413ad48485a3953bb6124"},
    ),
    ("short trace id padded", {"traceId": "abc"}, {"TraceId": "abc".rjust(32, "0")}),
    ("short span id padded", {"id": "1F"}, {"SpanId": "000000000000001f"}),
    ("parent id padded", {"parentId": "a"}, {"ParentSpanId": "000000000000000a"}),
    ("all-zero parent is a root", {"parentId": "0000000000000000"}, {"ParentSpanId": ""}),
    ("parent equal to id is a root", {"parentId": "6b221d5bc9e6496c"}, {"ParentSpanId": ""}),
    ("kind CLIENT", {"kind": "CLIENT"}, {"SpanKind": "Client"}),
    ("kind SERVER", {"kind": "SERVER"}, {"SpanKind": "Server"}),
    ("kind PRODUCER", {"kind": "PRODUCER"}, {"SpanKind": "Producer"}),
    ("kind CONSUMER", {"kind": "CONSUMER"}, {"SpanKind": "Consumer"}),
    ("kind lower case", {"kind": "client"}, {"SpanKind": "Client"}),
    ("kind unknown", {"kind": "BROADCAST"}, {"SpanKind": "Unspecified"}),
    ("kind absent", {}, {"SpanKind": "Unspecified"}),
    ("kind null (OTel exporter, internal)", {"kind": None}, {"SpanKind": "Unspecified"}),
    ("span.kind=internal tag", {"tags": {"span.kind": "internal"}}, {"SpanKind": "Internal"}),
    ("name keeps its case", {"name": "GET /Orders/{id}"}, {"SpanName": "GET /Orders/{id}"}),
    ("name absent", {"name": DROP}, {"SpanName": ""}),
    ("µs to ns", {"timestamp": 1764086400000001, "duration": 7}, {"Timestamp": 1764086400000001000, "Duration": 7000}),
    ("duration absent", {"duration": DROP}, {"Duration": 0}),
    ("duration negative, as Zipkin: 0", {"duration": -5}, {"Duration": 0}),
    ("timestamp as a float", {"timestamp": 1764086400000000.0}, {"Timestamp": 1764086400000000000}),
    (
        "no timestamp: first annotation",
        {
            "timestamp": DROP,
            "annotations": [
                {"timestamp": 1764086400000009, "value": "b"},
                {"timestamp": 1764086400000005, "value": "a"},
            ],
        },
        {"Timestamp": 1764086400000005000},
    ),
    ("service name keeps its case", {"localEndpoint": {"serviceName": "Frontend"}}, {"ServiceName": "Frontend"}),
    ("no local endpoint", {"localEndpoint": DROP}, {"ServiceName": "unknown_service", "ResourceAttributes": {}}),
    (
        "local endpoint ipv4 and port",
        {"localEndpoint": {"serviceName": "a", "ipv4": "10.1.2.3", "port": 8080}},
        {"ResourceAttributes": {"service.name": "a", "host.ip": "10.1.2.3", "net.host.port": "8080"}},
    ),
    (
        "ipv6 only",
        {"localEndpoint": {"serviceName": "a", "ipv6": "2001:DB8::1"}},
        {"ResourceAttributes": {"service.name": "a", "host.ip": "2001:db8::1"}},
    ),
    (
        "ipv4 wins over ipv6",
        {"localEndpoint": {"serviceName": "a", "ipv4": "10.0.0.1", "ipv6": "::1"}},
        {"ResourceAttributes": {"service.name": "a", "host.ip": "10.0.0.1"}},
    ),
    (
        "ipv4-mapped ipv6",
        {"localEndpoint": {"serviceName": "a", "ipv6": "::ffff:10.0.0.9"}},
        {"ResourceAttributes": {"service.name": "a", "host.ip": "10.0.0.9"}},
    ),
    (
        "bad ip ignored",
        {"localEndpoint": {"serviceName": "a", "ipv4": "999.1.1.1"}},
        {"ResourceAttributes": {"service.name": "a"}},
    ),
    (
        "overlong ip ignored",
        {"localEndpoint": {"serviceName": "a", "ipv4": "1" * 100}},
        {"ResourceAttributes": {"service.name": "a"}},
    ),
    (
        "negative port is absent",
        {"localEndpoint": {"serviceName": "a", "port": -1}},
        {"ResourceAttributes": {"service.name": "a"}},
    ),
    (
        "remote endpoint of a client",
        {"kind": "CLIENT", "remoteEndpoint": {"serviceName": "db", "ipv4": "10.0.0.2", "port": 5432}},
        {
            "SpanAttributes": {
                "peer.service": "db",
                "network.peer.address": "10.0.0.2",
                "network.peer.port": "5432",
                "server.address": "10.0.0.2",
                "server.port": "5432",
            }
        },
    ),
    (
        "remote endpoint of a server is the client",
        {"kind": "SERVER", "remoteEndpoint": {"ipv6": "::1", "port": 50000}},
        {
            "SpanAttributes": {
                "network.peer.address": "::1",
                "network.peer.port": "50000",
                "client.address": "::1",
                "client.port": "50000",
            }
        },
    ),
    (
        "a tag wins over the remote endpoint",
        {"kind": "CLIENT", "remoteEndpoint": {"serviceName": "db"}, "tags": {"peer.service": "orders-db"}},
        {"SpanAttributes": {"peer.service": "orders-db"}},
    ),
    (
        "tags verbatim",
        {"tags": {"http.path": "/a", "": "empty key"}},
        {"SpanAttributes": {"http.path": "/a", "": "empty key"}},
    ),
    (
        "non-string tags as text",
        {"tags": {"n": 3, "f": 0.5, "b": True, "x": None}},
        {"SpanAttributes": {"n": "3", "f": "0.5", "b": "true"}},
    ),
    (
        "error tag",
        {"tags": {"error": "timeout"}},
        {"StatusCode": "Error", "StatusMessage": "timeout", "SpanAttributes": {"error": "timeout"}},
    ),
    ("empty error tag", {"tags": {"error": ""}}, {"StatusCode": "Error", "StatusMessage": ""}),
    ("error tag true", {"tags": {"error": "true"}}, {"StatusCode": "Error", "StatusMessage": "true"}),
    ("otel status ok", {"tags": {"otel.status_code": "OK"}}, {"StatusCode": "Ok", "StatusMessage": ""}),
    (
        "otel status error",
        {"tags": {"otel.status_code": "ERROR", "otel.status_description": "boom"}},
        {"StatusCode": "Error", "StatusMessage": "boom"},
    ),
    ("no error", {}, {"StatusCode": "Unset", "StatusMessage": ""}),
    (
        "annotations to events",
        {"annotations": [{"timestamp": 1764086400000002, "value": "ws"}]},
        {"Events.Timestamp": [1764086400000002000], "Events.Name": ["ws"], "Events.Attributes": [{}]},
    ),
    ("shared", {"shared": True}, {"SpanAttributes": {"zipkin.shared": "true"}}),
    ("shared false", {"shared": False, "debug": False}, {"SpanAttributes": {}}),
    ("debug", {"debug": True}, {"SpanAttributes": {"zipkin.debug": "true"}}),
    (
        "otel scope",
        {"tags": {"otel.scope.name": "s", "otel.scope.version": "1"}},
        {"ScopeName": "s", "ScopeVersion": "1"},
    ),
    (
        "otel library",
        {"tags": {"otel.library.name": "l", "otel.library.version": "2"}},
        {"ScopeName": "l", "ScopeVersion": "2"},
    ),
    ("trace state", {"tags": {"w3c.tracestate": "k=v"}}, {"TraceState": "k=v"}),
    ("no links", {}, {"Links.TraceId": [], "Links.SpanId": [], "Links.TraceState": [], "Links.Attributes": []}),
    ("NUL kept", {"name": "a\x00b"}, {"SpanName": "a\x00b"}),
    ("lone surrogate replaced", {"name": "a\ud800b"}, {"SpanName": "a?b"}),
    ("unknown fields ignored", {"remoteEndpoint": None, "extra": [1]}, {"SpanAttributes": {}}),
]


@pytest.mark.parametrize(("fields", "expected"), [(f, e) for _, f, e in MAPPING], ids=[n for n, _, _ in MAPPING])
def test_mapping(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    got = one(**fields)
    assert {key: got[key] for key in expected} == expected


# -- spans rejected one by one -----------------------------------------------------

REJECTED = [
    ({"traceId": DROP}, "traceId is missing"),
    ({"traceId": ""}, "traceId is missing"),
    ({"traceId": "xyz"}, "traceId 'xyz' is not 1 to 32 hex characters"),
    ({"traceId": "1" * 33}, "is not 1 to 32 hex characters"),
    ({"traceId": "0" * 32}, "traceId is all zeros"),
    ({"traceId": 123}, "traceId must be a hex string, not number"),
    ({"id": DROP}, "id is missing"),
    ({"id": "0000000000000000"}, "id is all zeros"),
    ({"id": "1" * 17}, "is not 1 to 16 hex characters"),
    ({"parentId": "zz"}, "parentId 'zz' is not 1 to 16 hex"),
    ({"timestamp": "1764086400000000"}, "timestamp must be a number of microseconds, not string"),
    ({"timestamp": True}, "timestamp must be a number of microseconds, not boolean"),
    ({"timestamp": -1}, "timestamp is missing"),  # negative is unset, as Zipkin reads it
    ({"timestamp": float("nan")}, "timestamp nan is not a finite number"),
    ({"timestamp": DROP}, "timestamp is missing"),
    ({"timestamp": 2**62}, "past the year 2262"),
    ({"duration": "5"}, "duration must be a number of microseconds"),
    ({"kind": 1}, "kind must be a string, not number"),
    ({"name": ["a"]}, "name must be a string, not array"),
    ({"localEndpoint": "frontend"}, "localEndpoint must be a JSON object, not string"),
    ({"localEndpoint": {"serviceName": 1}}, "localEndpoint.serviceName must be a string"),
    ({"remoteEndpoint": {"port": "80"}}, "remoteEndpoint.port must be an integer, not string"),
    ({"remoteEndpoint": {"port": 70000}}, "remoteEndpoint.port 70000 is not a TCP port"),
    ({"annotations": {"a": 1}}, "annotations must be a JSON array, not object"),
    ({"annotations": ["ws"]}, "annotations[0] must be a JSON object, not string"),
    ({"annotations": [{"value": "ws"}]}, "an annotation timestamp is missing"),
    ({"tags": ["a"]}, "tags must be a JSON object, not array"),
    ({"tags": {"k": {"nested": 1}}}, "tags['k'] must be a string, not object"),
    ({"shared": "yes"}, "shared must be true or false, not string"),
    ({"binaryAnnotations": []}, "is a Zipkin v1 span"),
]


@pytest.mark.parametrize(("fields", "reason"), REJECTED, ids=[r for _, r in REJECTED])
def test_invalid_span_is_rejected_alone(fields: dict[str, Any], reason: str) -> None:
    decoded = decode_zipkin_json(body(span(id="1"), span(**fields), span(id="2")))
    assert decoded.rejected == 1
    assert [row(decoded.batch, i)["SpanId"] for i in range(2)] == ["0000000000000001", "0000000000000002"]
    assert decoded.reasons[0].startswith("span 1: ")
    assert reason in decoded.reasons[0]


def test_non_object_items_are_rejected_and_counted() -> None:
    decoded = decode_zipkin_json(body(42, span(), None, "x"))
    assert (len(decoded.batch), decoded.rejected) == (1, 3)
    assert decoded.reasons == [
        "span 0: must be a JSON object, not number",
        "span 2: must be a JSON object, not null",
        "span 3: must be a JSON object, not string",
    ]


# -- bodies that are not a span list -------------------------------------------------

MALFORMED = [
    (b"", "body is empty"),
    (b" \n", "body is empty"),
    (b"[{", "body is not valid JSON"),
    (b'{"traceId":"1"}', "must be a JSON array of Zipkin v2 spans, not a JSON object"),
    (b"null", "not a JSON null"),
    (b"[" * 100_000 + b"]" * 100_000, "body is not valid JSON"),
    (b'[{"timestamp":' + b"9" * 5000 + b"}]", "body is not valid JSON"),
]


@pytest.mark.parametrize(("payload", "message"), MALFORMED, ids=[m for _, m in MALFORMED])
def test_malformed_json_body(payload: bytes, message: str) -> None:
    with pytest.raises(MalformedPayload, match=message):
        decode_zipkin_json(payload)


def test_invalid_utf8_is_replaced_not_refused() -> None:
    payload = body(span(name="NAME")).replace(b"NAME", b"caf\xe9 \xff")
    assert one_row(decode_zipkin_json(payload).batch)["SpanName"] == "caf\ufffd \ufffd"


@pytest.mark.parametrize(
    ("tags", "kept"),
    [
        ({f"t{i}": "v" for i in range(2000)}, {f"t{i}": "v" for i in range(1024)}),
        ({"big": "x" * 100_000, "k" * 300: "v"}, {"big": "x" * 65_536, "k" * 256: "v"}),
    ],
    ids=["2000 tags", "long value and key"],
)
def test_tags_are_capped_like_otlp_attributes_with_the_cut_recorded(tags: dict[str, str], kept: dict[str, str]) -> None:
    attributes = one_row(decode_zipkin_json(body(span(tags=tags))).batch)["SpanAttributes"]
    assert attributes == {**kept, "tracehouse.truncated": "true"}


def test_tags_within_the_caps_are_kept_as_sent() -> None:
    tags = {f"t{i}": "é" * 65_536 for i in range(3)}  # 128 KiB as UTF-8, 65,536 characters: within
    assert one_row(decode_zipkin_json(body(span(tags=tags))).batch)["SpanAttributes"] == tags


def test_byte_order_mark_and_empty_list() -> None:
    assert len(decode_zipkin_json(b"\xef\xbb\xbf" + body(span())).batch) == 1
    decoded = decode_zipkin_json(b"[]")
    assert (len(decoded.batch), decoded.rejected) == (0, 0)


def one_row(batch: SpanBatch) -> dict[str, Any]:
    assert len(batch) == 1
    return row(batch)


# -- protobuf --------------------------------------------------------------------------


def packed_ip(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def to_proto_endpoint(endpoint: dict[str, Any] | None) -> pb.Endpoint | None:
    if endpoint is None:
        return None
    return pb.Endpoint(
        service_name=endpoint.get("serviceName", "").encode(),
        ipv4=packed_ip(endpoint["ipv4"]) if "ipv4" in endpoint else b"",
        ipv6=packed_ip(endpoint["ipv6"]) if "ipv6" in endpoint else b"",
        port=endpoint.get("port", 0),
    )


def to_proto(item: dict[str, Any]) -> pb.Span:
    """What Brave's protobuf encoder writes for the same span."""
    return pb.Span(
        trace_id=bytes.fromhex(item["traceId"]),
        parent_id=bytes.fromhex(item.get("parentId", "")),
        id=bytes.fromhex(item["id"]),
        kind=item.get("kind", "SPAN_KIND_UNSPECIFIED"),
        name=item.get("name", "").encode(),
        timestamp=item.get("timestamp", 0),
        duration=item.get("duration", 0),
        local_endpoint=to_proto_endpoint(item.get("localEndpoint")),
        remote_endpoint=to_proto_endpoint(item.get("remoteEndpoint")),
        annotations=[
            pb.Annotation(timestamp=a["timestamp"], value=a["value"].encode()) for a in item.get("annotations", [])
        ],
        tags=[pb.Tag(key=k.encode(), value=v.encode()) for k, v in item.get("tags", {}).items()],
        debug=item.get("debug", False),
        shared=item.get("shared", False),
    )


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_protobuf_gives_the_same_columns_as_json(name: str) -> None:
    from_json = decode_zipkin_json(fixture(name))
    message = pb.ListOfSpans(spans=[to_proto(item) for item in json.loads(fixture(name))])
    from_proto = decode_zipkin_proto(message.SerializeToString())
    assert from_proto.rejected == 0
    assert from_proto.batch.columns() == from_json.batch.columns()


def upstream_list_of_spans() -> Any:
    """A subset of zipkin-api's own zipkin.proto (string fields, `map<string, string> tags`),
    built here so the test proves our bytes/repeated-entry declaration reads its wire format."""
    t = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="upstream_zipkin_test.proto", package="upstream", syntax="proto3")

    def field(message: Any, name: str, number: int, kind: int, type_name: str = "", repeated: bool = False) -> None:
        label = t.LABEL_REPEATED if repeated else t.LABEL_OPTIONAL
        added = message.field.add(name=name, number=number, type=kind, label=label)
        if type_name:
            added.type_name = type_name

    endpoint = proto.message_type.add(name="Endpoint")
    field(endpoint, "service_name", 1, t.TYPE_STRING)
    field(endpoint, "ipv4", 2, t.TYPE_BYTES)
    field(endpoint, "port", 4, t.TYPE_INT32)
    span_type = proto.message_type.add(name="Span")
    entry = span_type.nested_type.add(name="TagsEntry")
    entry.options.map_entry = True
    field(entry, "key", 1, t.TYPE_STRING)
    field(entry, "value", 2, t.TYPE_STRING)
    for name, number, kind in (("trace_id", 1, t.TYPE_BYTES), ("id", 3, t.TYPE_BYTES), ("kind", 4, t.TYPE_INT32)):
        field(span_type, name, number, kind)
    field(span_type, "name", 5, t.TYPE_STRING)
    field(span_type, "timestamp", 6, t.TYPE_FIXED64)
    field(span_type, "duration", 7, t.TYPE_UINT64)
    field(span_type, "local_endpoint", 8, t.TYPE_MESSAGE, ".upstream.Endpoint")
    field(span_type, "tags", 11, t.TYPE_MESSAGE, ".upstream.Span.TagsEntry", repeated=True)
    field(span_type, "shared", 13, t.TYPE_BOOL)
    spans = proto.message_type.add(name="ListOfSpans")
    field(spans, "spans", 1, t.TYPE_MESSAGE, ".upstream.Span", repeated=True)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("upstream.ListOfSpans"))()


def test_protobuf_from_upstream_zipkin_proto() -> None:
    message = upstream_list_of_spans()
    item = message.spans.add(trace_id=bytes.fromhex(BASE["traceId"]), id=bytes.fromhex(BASE["id"]), kind=2)
    item.name, item.timestamp, item.duration, item.shared = "get /Api", 1764086400000000, 1500, True
    item.local_endpoint.service_name, item.local_endpoint.ipv4, item.local_endpoint.port = (
        "backend",
        packed_ip("10.0.0.1"),
        9000,
    )
    item.tags["http.path"] = "/api"
    item.tags["error"] = "boom"
    got = one_row(decode_zipkin_proto(message.SerializeToString()).batch)
    assert (got["TraceId"], got["SpanId"], got["SpanKind"], got["SpanName"]) == (
        PADDED_TRACE,
        BASE["id"],
        "Server",
        "get /Api",
    )
    assert (got["Timestamp"], got["Duration"], got["StatusCode"], got["StatusMessage"]) == (
        1764086400000000000,
        1500000,
        "Error",
        "boom",
    )
    assert got["ResourceAttributes"] == {"service.name": "backend", "host.ip": "10.0.0.1", "net.host.port": "9000"}
    assert got["SpanAttributes"] == {"http.path": "/api", "error": "boom", "zipkin.shared": "true"}


PROTO_REJECTED = [
    ({"trace_id": b"\x01" * 12}, "traceId must be 8 or 16 bytes, not 12"),
    ({"trace_id": b""}, "traceId is missing"),
    ({"trace_id": bytes(16)}, "traceId is all zeros"),
    ({"id": b"\x01" * 4}, "id must be 8 bytes, not 4"),
    ({"parent_id": b"\x01" * 9}, "parentId must be 8 bytes, not 9"),
    ({"timestamp": 0}, "timestamp is missing"),
    ({"duration": 2**64 - 1}, "past the year 2262"),
    ({"remote_endpoint": pb.Endpoint(port=65536)}, "remoteEndpoint.port 65536 is not a TCP port"),
    ({"annotations": [pb.Annotation(value=b"ws")]}, "an annotation timestamp is missing"),
]


@pytest.mark.parametrize(("fields", "reason"), PROTO_REJECTED, ids=[r for _, r in PROTO_REJECTED])
def test_invalid_protobuf_span_is_rejected_alone(fields: dict[str, Any], reason: str) -> None:
    good = to_proto(span())
    bad = to_proto(span())
    for key, value in fields.items():
        if key in ("remote_endpoint",):
            bad.remote_endpoint.CopyFrom(value)
        elif key == "annotations":
            bad.annotations.extend(value)
        else:
            setattr(bad, key, value)
    decoded = decode_zipkin_proto(pb.ListOfSpans(spans=[good, bad, good]).SerializeToString())
    assert (len(decoded.batch), decoded.rejected) == (2, 1)
    assert reason in decoded.reasons[0]


def test_protobuf_text_fields_with_invalid_utf8_are_replaced() -> None:
    item = to_proto(span(kind="CLIENT"))
    item.name = b"caf\xe9"
    item.tags.add(key=b"k\xff", value=b"v\xfe")
    item.kind = 9  # a kind from a newer Zipkin: kept as Unspecified
    got = one_row(decode_zipkin_proto(pb.ListOfSpans(spans=[item]).SerializeToString()).batch)
    assert (got["SpanName"], got["SpanAttributes"], got["SpanKind"]) == (
        "caf\ufffd",
        {"k\ufffd": "v\ufffd"},
        "Unspecified",
    )


@pytest.mark.parametrize("payload", [b"\xff\xff\xff", b"\x0a\x05\x01", b"\x0a" * 200])
def test_malformed_protobuf_body(payload: bytes) -> None:
    with pytest.raises(MalformedPayload, match="not a protobuf Zipkin ListOfSpans"):
        decode_zipkin_proto(payload)


# -- fuzz: no input crashes the decoder or loses the valid spans beside it -------------

scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
hex_ids = st.text("0123456789abcdefABCDEF", max_size=34)
span_like = st.fixed_dictionaries(
    {},
    optional={
        key: hex_ids | json_values if key in ("traceId", "id", "parentId") else json_values
        for key in (
            "traceId",
            "id",
            "parentId",
            "kind",
            "name",
            "timestamp",
            "duration",
            "localEndpoint",
            "remoteEndpoint",
            "annotations",
            "tags",
            "debug",
            "shared",
        )
    },
)


def assert_consistent(batch: SpanBatch) -> None:
    assert len({len(column) for column in batch.columns()}) == 1
    for i in range(len(batch)):
        got = row(batch, i)
        assert (len(got["TraceId"]), len(got["SpanId"])) == (32, 16)
        assert len(got["ParentSpanId"]) in (0, 16)


@settings(max_examples=300, deadline=None)
@given(st.lists(span_like | json_values, max_size=5))
def test_fuzz_json_keeps_valid_spans(items: list[Any]) -> None:
    decoded = decode_zipkin_json(json.dumps([span(id="1"), *items, span(id="2")]).encode())
    assert len(decoded.batch) + decoded.rejected == len(items) + 2
    assert row(decoded.batch, 0)["SpanId"] == "0000000000000001"
    assert row(decoded.batch, len(decoded.batch) - 1)["SpanId"] == "0000000000000002"
    assert_consistent(decoded.batch)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_any_bytes_decode_or_malformed(payload: bytes) -> None:
    for decoder in (decode_zipkin_json, decode_zipkin_proto):
        try:
            decoded = decoder(payload)
        except MalformedPayload:
            continue
        assert_consistent(decoded.batch)


proto_spans = st.builds(
    pb.Span,
    trace_id=st.binary(max_size=17),
    parent_id=st.binary(max_size=9),
    id=st.binary(max_size=9),
    kind=st.integers(-5, 10),
    name=st.binary(max_size=10),
    timestamp=st.integers(0, 2**64 - 1),
    duration=st.integers(0, 2**64 - 1),
    local_endpoint=st.builds(
        pb.Endpoint,
        service_name=st.binary(max_size=5),
        ipv4=st.binary(max_size=5),
        ipv6=st.binary(max_size=17),
        port=st.integers(-(2**31), 2**31 - 1),
    ),
    annotations=st.lists(
        st.builds(pb.Annotation, timestamp=st.integers(0, 2**64 - 1), value=st.binary(max_size=5)), max_size=2
    ),
    tags=st.lists(st.builds(pb.Tag, key=st.binary(max_size=5), value=st.binary(max_size=5)), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(proto_spans, max_size=5))
def test_fuzz_protobuf_keeps_valid_spans(items: list[pb.Span]) -> None:
    good = to_proto(span())
    decoded = decode_zipkin_proto(pb.ListOfSpans(spans=[good, *items, good]).SerializeToString())
    assert len(decoded.batch) + decoded.rejected == len(items) + 2
    assert len(decoded.batch) >= 2
    assert_consistent(decoded.batch)


def test_spans_outside_the_time_window_are_rejected_and_counted() -> None:
    from tracehouse.collector.window import TimeWindow

    decoded = decode_zipkin_json(fixture("sleuth_64bit_shared_rpc.json"))  # fixed 2025 timestamps
    total = len(decoded.batch)
    assert total > 0
    kept = decoded.within(TimeWindow(max_age=7 * 86400, max_ahead=86400))
    assert (len(kept.batch), kept.rejected) == (0, total)
    assert "outside retention" in kept.message()
    fresh = decode_zipkin_json(fixture("sleuth_64bit_shared_rpc.json")).within(TimeWindow(50 * 365 * 86400, 86400))
    assert (len(fresh.batch), fresh.rejected) == (total, 0)
