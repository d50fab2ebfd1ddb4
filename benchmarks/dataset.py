"""The Jaeger-comparable data set: traces of 10 spans, 11 string attributes per span,
10 services, 50 operations, as OTLP `ExportTraceServiceRequest` protobuf payloads."""

from __future__ import annotations

import os
import random
import re
import struct
import time
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

SERVICES = [f"service-{i}" for i in range(10)]
OPERATIONS = [f"operation-{i}" for i in range(50)]
SPANS_PER_TRACE = 10
ATTRIBUTES = 11


def _request(traces: int, rng: random.Random) -> tuple[bytes, list[bytes], list[bytes]]:
    """One request of `traces` traces (10 spans each), one resource per service: the serialized
    request, its trace ids and its span ids."""
    request = ExportTraceServiceRequest()
    by_service = {}
    for service in SERVICES:
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.append(_kv("service.name", service))
        resource_spans.resource.attributes.append(_kv("host.name", f"host-{rng.randrange(20)}"))
        scope = resource_spans.scope_spans.add()
        scope.scope.name = "bench"
        by_service[service] = scope.spans
    now = time.time_ns()
    trace_ids, span_ids = [os.urandom(16) for _ in range(traces)], []
    for trace_id in trace_ids:
        ids = [os.urandom(8) for _ in range(SPANS_PER_TRACE)]
        span_ids += ids
        for i, span_id in enumerate(ids):
            span = by_service[rng.choice(SERVICES)].add()
            span.trace_id = trace_id
            span.span_id = span_id
            if i:
                span.parent_span_id = ids[rng.randrange(i)]
            span.name = rng.choice(OPERATIONS)
            span.kind = Span.SPAN_KIND_SERVER if i == 0 else Span.SPAN_KIND_CLIENT
            span.start_time_unix_nano = now + i * 1000
            span.end_time_unix_nano = span.start_time_unix_nano + rng.randrange(1_000, 50_000_000)
            for a in range(ATTRIBUTES):
                span.attributes.append(_kv(f"attr.key{a}", f"value-{rng.randrange(1000)}"))
    return request.SerializeToString(), trace_ids, span_ids


@dataclass(frozen=True)
class Request:
    """One request that can be sent again as new traces: `renewed()` is the same bytes with fresh
    trace and span ids (a parent id follows its span's). A load that replays a few hundred
    requests would otherwise send the same traces over and over: the per-trace tables fold them
    into a few thousand rows, and repeated ids compress far better than a real stream's."""

    body: bytes
    pieces: tuple[bytes, ...]  # the body cut around every trace, span and parent span id
    slots: tuple[int, ...]  # between pieces i and i+1: the id numbered slots[i] (ids: below)
    traces: int  # ids 0 .. traces-1 are trace ids (16 bytes), the rest span ids (8 bytes)
    spans: int

    @classmethod
    def of(cls, body: bytes, trace_ids: list[bytes], span_ids: list[bytes]) -> Request:
        numbers = {tag + id_: i for i, id_ in enumerate(trace_ids) for tag in [_TRACE_ID]}
        numbers |= {tag + id_: len(trace_ids) + i for i, id_ in enumerate(span_ids) for tag in _SPAN_IDS}
        pieces, slots, start = [], [], 0
        found = _ID_TAGS.search(body)
        while found:
            at = found.start()
            length = 18 if found.group() == _TRACE_ID else 10
            slot = numbers.get(body[at : at + length])
            if slot is None:  # the two tag bytes by chance inside another field
                found = _ID_TAGS.search(body, at + 1)
                continue
            pieces.append(body[start : at + 2])
            slots.append(slot)
            start = at + length
            found = _ID_TAGS.search(body, start)
        pieces.append(body[start:])
        return cls(body, tuple(pieces), tuple(slots), len(trace_ids), len(span_ids))

    def renewed(self) -> bytes:
        fresh = os.urandom(16 * self.traces + 8 * self.spans)
        split = 16 * self.traces
        ids = [fresh[i : i + 16] for i in range(0, split, 16)] + [fresh[i : i + 8] for i in range(split, len(fresh), 8)]
        out = [self.pieces[0]]
        for slot, piece in zip(self.slots, self.pieces[1:], strict=True):
            out += (ids[slot], piece)
        return b"".join(out)


#: The tag and length bytes of Span.trace_id (field 1, 16 bytes), span_id (2) and parent_span_id (4).
_TRACE_ID = b"\x0a\x10"
_SPAN_IDS = (b"\x12\x08", b"\x22\x08")
_ID_TAGS = re.compile(b"|".join(re.escape(tag) for tag in (_TRACE_ID, *_SPAN_IDS)))


def requests(count: int, traces_per_request: int, seed: int = 42) -> list[Request]:
    """`count` requests whose traces can be renewed at each send (`Request.renewed`)."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        body, trace_ids, span_ids = _request(traces_per_request, rng)
        request = Request.of(body, trace_ids, span_ids)
        # every span's trace and span id, and a parent id for all but the first of each trace
        assert len(request.slots) == traces_per_request * (3 * SPANS_PER_TRACE - 1), "an id was not found"
        out.append(request)
    return out


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


# -- the same shape over a time range, encoded by hand (benchmarks/query.py loads 10M spans) ------
# Realistic where queries care: each service owns 5 operations, a child span is in another
# service (kind Server) or in its parent's (Internal), durations are log-normal and nested in
# the parent's, ~1 % of spans fail. Trace starts are spread evenly over the range, in order.

OPERATIONS_PER_SERVICE = len(OPERATIONS) // len(SERVICES)
ATTRIBUTE_VALUES = 1000
ERROR_RATE = 0.01
_KIND_INTERNAL, _KIND_SERVER = 1, 2
_MEDIAN_ROOT_NS = 40_000_000
_U64 = struct.Struct("<Q")


class Timeline:
    """`traces` traces starting evenly over [start_ns, start_ns + window_ns), as OTLP
    `ExportTraceServiceRequest` bodies (wire format written directly: ~10x the protobuf library)."""

    def __init__(self, traces: int, start_ns: int, window_ns: int, seed: int = 42) -> None:
        self.traces = traces
        self._rng = random.Random(seed)
        self._start = start_ns
        self._step = window_ns / traces
        self._next = 0
        self._attributes = [
            [_field(0x4A, _kv(f"attr.key{a}", f"value-{v}").SerializeToString()) for v in range(ATTRIBUTE_VALUES)]
            for a in range(ATTRIBUTES)
        ]
        self._names = [_field(0x2A, name.encode()) for name in OPERATIONS]
        self._kinds = {kind: bytes((0x30, kind)) for kind in (_KIND_INTERNAL, _KIND_SERVER)}
        self._error = _field(0x7A, _field(0x12, b"internal error") + bytes((0x18, 2)))
        self._scope = _field(0x0A, _field(0x0A, b"bench"))
        self._resources = [
            [
                _field(0x0A, _field(0x0A, _kv("service.name", service).SerializeToString())
                       + _field(0x0A, _kv("host.name", f"host-{h}").SerializeToString()))
                for h in range(20)
            ]
            for service in SERVICES
        ]  # fmt: skip

    def request(self, traces: int) -> tuple[bytes, int]:
        """The next `traces` traces (fewer at the end) as one request body, and its span count."""
        by_service: list[list[bytes]] = [[] for _ in SERVICES]
        count = min(traces, self.traces - self._next)
        for _ in range(count):
            self._trace(by_service)
        body = b"".join(
            _field(0x0A, self._resources[s][self._rng.randrange(20)] + _field(0x12, self._scope + b"".join(spans)))
            for s, spans in enumerate(by_service)
            if spans
        )
        return body, count * SPANS_PER_TRACE

    def _trace(self, by_service: list[list[bytes]]) -> None:
        rng = self._rng
        trace_id = b"\x0a\x10" + rng.getrandbits(128).to_bytes(16, "little")
        ids = [rng.getrandbits(64).to_bytes(8, "little") for _ in range(SPANS_PER_TRACE)]
        start = int(self._start + self._next * self._step)
        self._next += 1
        duration = min(int(rng.lognormvariate(0, 1) * _MEDIAN_ROOT_NS), 30 * 10**9)
        spans = [(rng.randrange(len(SERVICES)), start, duration)]
        for i in range(1, SPANS_PER_TRACE):
            parent = rng.randrange(i)
            parent_service, parent_start, parent_duration = spans[parent]
            service = rng.randrange(len(SERVICES)) if rng.random() < 0.6 else parent_service
            start = parent_start + int(parent_duration * rng.random() * 0.5)
            spans.append((service, start, max(1000, int(parent_duration * (0.05 + 0.4 * rng.random())))))
            kind = _KIND_SERVER if service != parent_service else _KIND_INTERNAL
            by_service[service].append(self._span(trace_id, ids[i], b"\x22\x08" + ids[parent], kind, spans[i]))
        by_service[spans[0][0]].append(self._span(trace_id, ids[0], b"", _KIND_SERVER, spans[0]))

    def _span(self, trace_id: bytes, span_id: bytes, parent: bytes, kind: int, span: tuple[int, int, int]) -> bytes:
        rng = self._rng
        service, start, duration = span
        values = rng.choices(range(ATTRIBUTE_VALUES), k=ATTRIBUTES)
        body = b"".join((
            trace_id, b"\x12\x08", span_id, parent,
            self._names[service * OPERATIONS_PER_SERVICE + rng.randrange(OPERATIONS_PER_SERVICE)],
            self._kinds[kind], b"\x39", _U64.pack(start), b"\x41", _U64.pack(start + duration),
            *(self._attributes[a][v] for a, v in enumerate(values)),
            self._error if rng.random() < ERROR_RATE else b"",
        ))  # fmt: skip
        return _field(0x12, body)


def _field(tag: int, data: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return bytes((tag,)) + _varint(len(data)) + data


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
