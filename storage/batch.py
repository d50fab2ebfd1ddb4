"""The columnar span batch: what decoders produce and `SpanWriter` inserts.

One list per `otel_traces` column, never a list of per-span dicts (the hot path appends
to lists and hands them to ClickHouse as columns). Nothing here validates: decoders do.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, fields

Attributes = dict[str, str]

#: Column names of `otel_traces` in insert order; Nested columns use their flattened names.
COLUMNS: tuple[str, ...] = (
    "Timestamp",
    "TraceId",
    "SpanId",
    "ParentSpanId",
    "TraceState",
    "SpanName",
    "SpanKind",
    "ServiceName",
    "ResourceAttributes",
    "ScopeName",
    "ScopeVersion",
    "SpanAttributes",
    "Duration",
    "StatusCode",
    "StatusMessage",
    "Events.Timestamp",
    "Events.Name",
    "Events.Attributes",
    "Links.TraceId",
    "Links.SpanId",
    "Links.TraceState",
    "Links.Attributes",
)


@dataclass(slots=True)
class SpanBatch:
    """Spans as columns. All lists have the same length; index i is span i.

    `token` identifies the batch for insert deduplication: writing the same batch
    (same token) twice stores it once.
    """

    timestamp_ns: list[int] = field(default_factory=list)
    trace_id: list[str] = field(default_factory=list)
    span_id: list[str] = field(default_factory=list)
    parent_span_id: list[str] = field(default_factory=list)
    trace_state: list[str] = field(default_factory=list)
    span_name: list[str] = field(default_factory=list)
    span_kind: list[str] = field(default_factory=list)
    service_name: list[str] = field(default_factory=list)
    resource_attributes: list[Attributes] = field(default_factory=list)
    scope_name: list[str] = field(default_factory=list)
    scope_version: list[str] = field(default_factory=list)
    span_attributes: list[Attributes] = field(default_factory=list)
    duration_ns: list[int] = field(default_factory=list)
    status_code: list[str] = field(default_factory=list)
    status_message: list[str] = field(default_factory=list)
    event_timestamp_ns: list[list[int]] = field(default_factory=list)
    event_name: list[list[str]] = field(default_factory=list)
    event_attributes: list[list[Attributes]] = field(default_factory=list)
    link_trace_id: list[list[str]] = field(default_factory=list)
    link_span_id: list[list[str]] = field(default_factory=list)
    link_trace_state: list[list[str]] = field(default_factory=list)
    link_attributes: list[list[Attributes]] = field(default_factory=list)
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __len__(self) -> int:
        return len(self.span_id)

    def columns(self) -> list[list[object]]:
        """The column lists in `COLUMNS` order (no copies)."""
        return [getattr(self, f.name) for f in _COLUMN_FIELDS]

    def extend(self, other: SpanBatch) -> None:
        """Append every span of `other` (its token is not kept)."""
        for f in _COLUMN_FIELDS:
            getattr(self, f.name).extend(getattr(other, f.name))

    def without(self, indexes: set[int]) -> SpanBatch:
        """A new batch (new token: it is other data) of the spans whose index is not in `indexes`."""
        kept = SpanBatch()
        for f in _COLUMN_FIELDS:
            getattr(kept, f.name).extend(v for i, v in enumerate(getattr(self, f.name)) if i not in indexes)
        return kept

    @classmethod
    def concat(cls, batches: list[SpanBatch], token: str | None = None) -> SpanBatch:
        """One batch holding the spans of `batches` in order."""
        merged = cls() if token is None else cls(token=token)
        for batch in batches:
            merged.extend(batch)
        return merged


_COLUMN_FIELDS = tuple(f for f in fields(SpanBatch) if f.name != "token")
assert len(_COLUMN_FIELDS) == len(COLUMNS)


@dataclass(frozen=True, slots=True)
class OtlpPayload:
    """Validated OTLP `ExportTraceServiceRequest` messages, each prefixed by its varint length
    (ClickHouse's Protobuf input format), decoded and flattened inside ClickHouse.

    `spans` counts the spans inside; `token` identifies the payload for insert deduplication.
    """

    data: bytes
    spans: int
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __len__(self) -> int:
        return self.spans

    @classmethod
    def frame(cls, message: bytes, spans: int) -> OtlpPayload:
        """A payload holding one serialized `ExportTraceServiceRequest` of `spans` spans."""
        return cls(_varint(len(message)) + message if spans else b"", spans)

    @classmethod
    def concat(cls, payloads: list[OtlpPayload]) -> OtlpPayload:
        return cls(b"".join(p.data for p in payloads), sum(p.spans for p in payloads))

    def frames(self) -> list[tuple[bytes, bytes | None]]:
        """Each framed message of `data` as (the frame, the message); bytes that are no
        complete frame come last as (those bytes, None)."""
        frames: list[tuple[bytes, bytes | None]] = []
        data, offset = self.data, 0
        while offset < len(data):
            header = _read_varint(data, offset)
            if header is None or header[0] + header[1] > len(data):
                frames.append((data[offset:], None))
                break
            size, start = header
            frames.append((data[offset : start + size], data[start : start + size]))
            offset = start + size
        return frames


def _read_varint(data: bytes, offset: int) -> tuple[int, int] | None:
    """(value, offset after it) of the varint at `offset`, or None when there is none."""
    value = shift = 0
    for index in range(offset, min(len(data), offset + 10)):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, index + 1
        shift += 7
    return None


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
