"""OTLP spans decoded and flattened inside ClickHouse (Protobuf input format + view) land in
`otel_traces` with every field mapped as the OTel Collector's exporter maps it."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.unit.test_otlp_decode import sdk_spans
from tracehouse.collector import decode_protobuf
from tracehouse.storage import ClickHouseStore, OtlpPayload

pytestmark = pytest.mark.integration


def test_sdk_spans_land_with_every_field(store: ClickHouseStore) -> None:
    spans = sdk_spans()
    store.write_otlp(decode_protobuf(encode_spans(spans).SerializeToString()).payload)
    sdk_root = next(s for s in spans if s.name == "GET /cart")
    sdk_child = next(s for s in spans if s.name == "SELECT")
    trace_id = format(sdk_root.context.trace_id, "032x")
    root, child = store.get_trace(trace_id)
    assert root.span_id == format(sdk_root.context.span_id, "016x")
    assert (root.parent_span_id, child.parent_span_id) == ("", root.span_id)
    assert root.timestamp_ns == sdk_root.start_time  # nanoseconds kept
    assert root.duration_ns == sdk_root.end_time - sdk_root.start_time
    assert child.timestamp_ns == sdk_child.start_time
    assert (root.kind, child.kind) == ("Server", "Client")
    assert (root.status_code, child.status_code, child.status_message) == ("Unset", "Error", "timeout")
    assert root.service_name == "shop"
    assert root.resource_attributes["deployment.environment"] == "test"
    assert (root.scope_name, root.scope_version) == ("shop.instrumentation", "2.0")
    assert root.attributes == {
        "http.method": "GET", "retries": "3", "ratio": "0.5", "cached": "true", "tags": '["a","b"]'
    }  # fmt: skip
    assert [(e.name, e.attributes) for e in root.events] == [("cache miss", {"key": "cart:1"})]
    assert root.events[0].timestamp_ns == sdk_root.events[0].timestamp
    assert [(k.trace_id, k.span_id, k.attributes) for k in child.links] == [
        (trace_id, root.span_id, {"why": "follows"})
    ]


def any_value(**kind: object) -> AnyValue:
    return AnyValue(**kind)  # type: ignore[arg-type]


def test_attribute_values_are_stringified_like_the_exporter(store: ClickHouseStore) -> None:
    nested = AnyValue()
    nested.kvlist_value.values.append(KeyValue(key="k", value=AnyValue(string_value='q"uote')))
    nested.kvlist_value.values.append(KeyValue(key="n", value=AnyValue(int_value=-7)))
    array = AnyValue()
    array.array_value.values.extend([AnyValue(int_value=1), AnyValue(bool_value=False), AnyValue(double_value=2.5)])
    values = {
        "str": AnyValue(string_value="Grüße ✓"),
        "int": AnyValue(int_value=-9_000_000_000),
        "double": AnyValue(double_value=0.25),
        "bool": AnyValue(bool_value=False),
        "bytes": AnyValue(bytes_value=b"\x00\x01\xff"),
        "array": array,
        "kvlist": nested,
        "empty": AnyValue(),
    }
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="attrs")))
    span = resource_spans.scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = os.urandom(16), os.urandom(8), "values"
    span.start_time_unix_nano = time.time_ns()  # older than the TTL would be dropped at insert
    span.end_time_unix_nano = span.start_time_unix_nano - 1
    for key, value in values.items():
        span.attributes.append(KeyValue(key=key, value=value))
    store.write_otlp(OtlpPayload.frame(request.SerializeToString(), 1))
    (stored,) = store.get_trace(span.trace_id.hex())
    assert stored.attributes == {
        "str": "Grüße ✓",
        "int": "-9000000000",
        "double": "0.25",
        "bool": "false",
        "bytes": "AAH/",
        "array": "[1,false,2.5]",
        "kvlist": '{"k":"q\\"uote","n":-7}',
        "empty": "",
    }
    assert stored.duration_ns == 0  # end before start: clamped, documented
    assert stored.kind == "Unspecified"


def test_the_same_payload_twice_is_stored_once(store: ClickHouseStore) -> None:
    payload = decode_protobuf(encode_spans(sdk_spans()).SerializeToString()).payload
    store.write_otlp(payload)
    store.write_otlp(payload)
    count = store.client().command("SELECT count() FROM otel_traces")
    assert int(count) == 2


def test_several_requests_in_one_payload(store: ClickHouseStore) -> None:
    payloads = [decode_protobuf(encode_spans(sdk_spans()).SerializeToString()).payload for _ in range(3)]
    store.write_otlp(OtlpPayload.concat(payloads))
    assert int(store.client().command("SELECT count() FROM otel_traces")) == 6
    assert int(store.client().command("SELECT uniqExact(TraceId) FROM otel_traces_trace_id_ts")) == 3


def test_invalid_utf8_is_repaired_not_refused(store: ClickHouseStore) -> None:
    """One bad byte in a span name must not cost the request: the text is stored with U+FFFD."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="SVCNAME_")))
    span = resource_spans.scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = os.urandom(16), os.urandom(8), "SPANNAME"
    span.start_time_unix_nano = span.end_time_unix_nano = time.time_ns()
    span.attributes.append(KeyValue(key="k", value=AnyValue(string_value="VALUE___")))
    body = request.SerializeToString()
    for placeholder, broken in (
        (b"SVCNAME_", b"svc\xff\xfe___"),
        (b"SPANNAME", b"na\xc3me\x80__"),
        (b"VALUE___", b"\xed\xa0\x80val__"),
    ):
        body = body.replace(placeholder, broken)  # same lengths: still well-formed protobuf
    decoded = decode_protobuf(body)
    assert (decoded.payload.spans, decoded.rejected) == (1, 0)
    store.write_otlp(decoded.payload)
    (stored,) = store.get_trace(span.trace_id.hex())
    assert stored.service_name == "svc\ufffd___"  # a run of bad bytes becomes one U+FFFD
    assert stored.name.startswith("na\ufffd")
    assert stored.attributes["k"].endswith("val__")
    assert "\ufffd" in stored.attributes["k"]


def new_span(spans: Any, name: str) -> Any:
    """A span added to `spans` (a repeated field) with fresh ids, starting and ending now."""
    span = spans.add()
    span.trace_id, span.span_id, span.name = os.urandom(16), os.urandom(8), name
    span.start_time_unix_nano = span.end_time_unix_nano = time.time_ns()
    return span


def test_huge_attributes_are_capped_and_the_cut_recorded(store: ClickHouseStore) -> None:
    request = ExportTraceServiceRequest()
    span = new_span(request.resource_spans.add().scope_spans.add().spans, "big")
    span.attributes.append(KeyValue(key="huge", value=AnyValue(string_value="x" * 1_000_000)))
    for i in range(5000):
        span.attributes.append(KeyValue(key=f"k{i}", value=AnyValue(int_value=i)))
    small = request.resource_spans[0].scope_spans[0].spans.add()
    small.trace_id, small.span_id, small.name = span.trace_id, os.urandom(8), "small"
    small.start_time_unix_nano = small.end_time_unix_nano = span.start_time_unix_nano + 1
    small.attributes.append(KeyValue(key="ok", value=AnyValue(string_value="y" * 1000)))
    store.write_otlp(decode_protobuf(request.SerializeToString()).payload)
    big, fine = store.get_trace(span.trace_id.hex())
    assert len(big.attributes["huge"]) == 65536
    assert len(big.attributes) == 1024 + 1
    assert big.attributes["tracehouse.truncated"] == "true"
    assert fine.attributes == {"ok": "y" * 1000}


def test_string_attributes_are_stored_the_same_on_either_side_of_the_caps(store: ClickHouseStore) -> None:
    """All-string attributes within the caps take the view's fast path (migration 0015); one step
    past a cap, or one value of another type, takes the full path. Both store the same map."""
    cases: dict[str, tuple[dict[str, AnyValue], dict[str, str]]] = {
        "value at the cap": ({"a": AnyValue(string_value="x" * 65536)}, {"a": "x" * 65536}),
        "value past it": (
            {"a": AnyValue(string_value="x" * 65537)},
            {"a": "x" * 65536, "tracehouse.truncated": "true"},
        ),
        "key at the cap": ({"k" * 256: AnyValue(string_value="v")}, {"k" * 256: "v"}),
        "key past it": ({"k" * 257: AnyValue(string_value="v")}, {"k" * 256: "v", "tracehouse.truncated": "true"}),
        "1,024 keys": ({f"k{i}": AnyValue(string_value="v") for i in range(1024)}, {f"k{i}": "v" for i in range(1024)}),
        "1,025 keys": (
            {f"k{i}": AnyValue(string_value="v") for i in range(1025)},
            {**{f"k{i}": "v" for i in range(1024)}, "tracehouse.truncated": "true"},
        ),
        "one int among strings": (
            {"s": AnyValue(string_value="t"), "n": AnyValue(int_value=3)},
            {"s": "t", "n": "3"},
        ),
    }
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    trace_id, now = os.urandom(16), time.time_ns()
    for i, (name, (attributes, _)) in enumerate(cases.items()):
        span = scope.spans.add()
        span.trace_id, span.span_id, span.name = trace_id, os.urandom(8), name
        span.start_time_unix_nano = span.end_time_unix_nano = now + i
        for key, value in attributes.items():
            span.attributes.append(KeyValue(key=key, value=value))
    store.write_otlp(decode_protobuf(request.SerializeToString()).payload)
    stored = {span.name: span.attributes for span in store.get_trace(trace_id.hex())}
    assert stored == {name: expected for name, (_, expected) in cases.items()}


def test_every_cut_map_records_it_and_the_service_name_survives_the_cap(store: ClickHouseStore) -> None:
    """Resource, event and link attributes are capped as the span's are, with the same mark (first,
    among the 1,024 kept); a service.name past the resource's 1,024th attribute still names the
    service; a value's cut is measured in characters, as the cap is."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    for i in range(1100):
        resource_spans.resource.attributes.append(KeyValue(key=f"r{i}", value=AnyValue(string_value="v")))
    resource_spans.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="last")))
    span = new_span(resource_spans.scope_spans.add().spans, "capped")
    many = [KeyValue(key=f"e{i}", value=AnyValue(string_value="v")) for i in range(2000)]
    span.events.add(time_unix_nano=span.start_time_unix_nano, name="many", attributes=many)
    link = span.links.add(trace_id=os.urandom(16), span_id=os.urandom(8))
    link.attributes.append(KeyValue(key="long", value=AnyValue(string_value="x" * 70_000)))
    span.attributes.append(KeyValue(key="wide", value=AnyValue(string_value="é" * 40_000)))  # 80 KB, 40k chars
    span.attributes.append(KeyValue(key="n", value=AnyValue(int_value=1)))  # not all strings: the full path
    store.write_otlp(decode_protobuf(request.SerializeToString()).payload)

    (stored,) = store.get_trace(span.trace_id.hex())
    assert stored.service_name == "last"
    assert len(stored.resource_attributes) == 1024
    assert stored.resource_attributes["tracehouse.truncated"] == "true"
    assert len(stored.events[0].attributes) == 1024
    assert stored.events[0].attributes["tracehouse.truncated"] == "true"
    assert stored.links[0].attributes == {"long": "x" * 65536, "tracehouse.truncated": "true"}
    assert stored.attributes == {"wide": "é" * 40_000, "n": "1"}


def test_a_value_long_in_bytes_but_within_the_cap_in_characters_is_not_marked(store: ClickHouseStore) -> None:
    request = ExportTraceServiceRequest()
    span = new_span(request.resource_spans.add().scope_spans.add().spans, "wide")
    span.attributes.append(KeyValue(key="wide", value=AnyValue(string_value="é" * 40_000)))
    store.write_otlp(decode_protobuf(request.SerializeToString()).payload)
    (stored,) = store.get_trace(span.trace_id.hex())
    assert stored.attributes == {"wide": "é" * 40_000}
