"""Property-based fuzzing of the OTLP decoders: whatever the bytes, the answer is a decoded
payload or a `MalformedPayload` — never another exception — and valid spans beside broken
ones are kept."""

from __future__ import annotations

import contextlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from tests.unit.test_otlp_decode import sdk_spans
from tracehouse.collector import MalformedPayload, decode_json, decode_protobuf

VALID = encode_spans(sdk_spans()).SerializeToString()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=5),
    max_leaves=30,
)
otlp_keys = st.sampled_from(
    ["resourceSpans", "scopeSpans", "spans", "traceId", "spanId", "parentSpanId", "name", "kind",
     "startTimeUnixNano", "endTimeUnixNano", "attributes", "key", "value", "stringValue", "intValue",
     "events", "links", "status", "code", "resource", "scope"]
)  # fmt: skip
otlp_like = st.recursive(json_values, lambda children: st.dictionaries(otlp_keys, children, max_size=6), max_leaves=40)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_protobuf_decoder_never_crashes(body: bytes) -> None:
    try:
        decoded = decode_protobuf(body)
    except MalformedPayload:
        return
    assert decoded.payload.spans >= 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(min_value=0, max_value=len(VALID)))
def test_mutated_valid_requests_never_crash(noise: bytes, at: int) -> None:
    body = VALID[:at] + noise + VALID[at + len(noise) :]
    with contextlib.suppress(MalformedPayload):
        decode_protobuf(body)


@settings(max_examples=300, deadline=None)
@given(otlp_like)
def test_json_decoder_never_crashes(document: object) -> None:
    try:
        decoded = decode_json(json.dumps(document).encode())
    except MalformedPayload:
        return
    assert decoded.payload.spans >= 0
