"""Read-side model objects: what `TraceReader` returns. Frozen, slotted, plain data."""

from __future__ import annotations

from dataclasses import dataclass

from tracehouse.storage.batch import Attributes


@dataclass(frozen=True, slots=True)
class Event:
    timestamp_ns: int
    name: str
    attributes: Attributes


@dataclass(frozen=True, slots=True)
class Link:
    trace_id: str
    span_id: str
    trace_state: str
    attributes: Attributes


@dataclass(frozen=True, slots=True)
class Span:
    """One row of `otel_traces`, timestamps in nanoseconds since the epoch (UTC)."""

    timestamp_ns: int
    trace_id: str
    span_id: str
    parent_span_id: str
    trace_state: str
    name: str
    kind: str
    service_name: str
    resource_attributes: Attributes
    scope_name: str
    scope_version: str
    attributes: Attributes
    duration_ns: int
    status_code: str
    status_message: str
    events: tuple[Event, ...]
    links: tuple[Link, ...]


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    span_kind: str
    spans: int
