"""A merged OTLP payload split back into its requests, and a request repaired of the fields
the store refuses (a known field sent with another wire type)."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from tests.unit.test_otlp_decode import sdk_spans
from tracehouse.collector.otlp import decode_protobuf, repaired, split_requests
from tracehouse.storage import OtlpPayload


def _ld(tag: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field: tag byte, varint length, bytes."""
    length, out = len(payload), bytearray()
    while length > 0x7F:
        out.append((length & 0x7F) | 0x80)
        length >>= 7
    out.append(length)
    return bytes([tag]) + bytes(out) + payload


def poisoned_request(poison: bytes = b"\x78\x01", span: bytes = b"") -> bytes:
    """A request the parser accepts but ClickHouse refuses: Span.status (field 15) sent as
    a varint instead of a message (without `poison`: the same request, valid). `span`: the
    serialized span to poison (a new one by default)."""
    if not span:
        message = encode_spans(sdk_spans()).resource_spans[0].scope_spans[0].spans[0]
        message.ClearField("status")
        span = message.SerializeToString()
    return _ld(0x0A, _ld(0x12, _ld(0x12, span + poison)))


def request_payload() -> OtlpPayload:
    return decode_protobuf(encode_spans(sdk_spans()).SerializeToString()).payload


def test_a_merged_payload_splits_into_its_requests_with_derived_tokens() -> None:
    parts = [request_payload() for _ in range(3)]
    merged = OtlpPayload.concat(parts)
    pieces = split_requests(merged)
    assert [p.data for p in pieces] == [p.data for p in parts]
    assert [p.spans for p in pieces] == [p.spans for p in parts] == [2, 2, 2]
    assert [p.token for p in pieces] == [f"{merged.token}.{i}" for i in range(3)]


def test_bytes_that_are_no_message_make_a_piece_of_their_own() -> None:
    good = request_payload()
    merged = OtlpPayload(good.data + b"\xff\xff\xff", good.spans + 1)
    pieces = split_requests(merged)
    assert [p.data for p in pieces] == [good.data, b"\xff\xff\xff"]
    assert pieces[1].spans == 1  # something to insert: the store refuses it, it is set aside
    assert OtlpPayload(b"\x05ab", 1).frames() == [(b"\x05ab", None)]  # a frame longer than the data


def test_the_repair_drops_a_field_sent_with_another_wire_type() -> None:
    span = encode_spans(sdk_spans()).resource_spans[0].scope_spans[0].spans[0]
    span.ClearField("status")
    poisoned = decode_protobuf(poisoned_request(span=span.SerializeToString())).payload
    fixed = repaired(poisoned)
    assert fixed is not None
    assert (fixed.spans, fixed.token) == (poisoned.spans, poisoned.token)
    clean = poisoned_request(b"", span.SerializeToString())
    assert fixed.frames() == [(OtlpPayload.frame(clean, 1).data, clean)]
    assert repaired(request_payload()) is None  # nothing unknown: nothing to repair
    assert repaired(OtlpPayload(b"\x05ab", 1)) is None  # no message at all
