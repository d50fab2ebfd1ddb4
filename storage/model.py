"""Read-side model objects: what `TraceReader` returns. Frozen, slotted, plain data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tracehouse.storage.batch import Attributes

#: The most spans a trace read returns; bigger traces are cut (and the API says so).
MAX_TRACE_SPANS = 100_000


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


@dataclass(frozen=True, slots=True)
class AttributeFilter:
    """One attribute condition, on span or resource attributes of the same span.

    `op`: "=" equal, "!=" present and different, "=~" present and matching the RE2 regex
    `value`, "exists" present, "absent" present on neither, "annotated" present or the name of
    one of the span's events (Zipkin's annotation query).
    """

    key: str
    op: str
    value: str = ""


@dataclass(frozen=True, slots=True)
class TraceQuery:
    """A trace search: a trace matches when one of its spans, started in [start_ns, end_ns),
    satisfies every given condition. Results are newest first (trace start, then id)."""

    start_ns: int
    end_ns: int
    service: str | None = None
    operation: str | None = None
    attributes: tuple[AttributeFilter, ...] = ()
    min_duration_ns: int | None = None
    max_duration_ns: int | None = None
    errors_only: bool = False
    limit: int = 20
    #: The span's parent is a span of this service: a call from it (a service map edge into `service`).
    parent_service: str | None = None
    #: The span is a client or producer span calling this database, queue or un-instrumented peer, or
    #: a consumer span reading this queue, named as the dependency linker names it (a map edge).
    peer: str | None = None


@dataclass(frozen=True, slots=True)
class TraceSummary:
    trace_id: str
    root_service: str
    root_operation: str
    start_ns: int
    duration_ns: int
    span_count: int
    error_count: int
    services: tuple[tuple[str, int], ...]  # (service, spans), by name


@dataclass(frozen=True, slots=True)
class RedQuery:
    """RED series of one service (optionally one operation) over [start_ns, end_ns) in steps of
    `step_s` seconds. `span_kinds` empty means every kind."""

    service: str
    start_ns: int
    end_ns: int
    step_s: int
    operation: str | None = None
    span_kinds: tuple[str, ...] = ("Server", "Consumer")


@dataclass(frozen=True, slots=True)
class CallStats:
    """Calls, errors among them, and duration quantiles in ns (0 when there were no calls)."""

    calls: int
    errors: int
    p50_ns: float
    p95_ns: float
    p99_ns: float

    @staticmethod
    def of(calls: int, errors: int, quantiles: Sequence[float]) -> dict[str, Any]:
        """Keyword arguments for a subclass, from a row's count, error count and quantiles."""
        p50, p95, p99 = (float(q) for q in quantiles) if quantiles and calls else (0.0, 0.0, 0.0)
        return {"calls": int(calls), "errors": int(errors), "p50_ns": p50, "p95_ns": p95, "p99_ns": p99}


@dataclass(frozen=True, slots=True)
class RedPoint(CallStats):
    """One step of a RED series, starting at `start_ns`."""

    start_ns: int


@dataclass(frozen=True, slots=True)
class OperationStats(CallStats):
    """One operation (span name and kind) of a service over a range; `since_s`: the first minute
    (epoch s) in the range with spans of the service, any operation (rates are over the seconds from
    there: `tracehouse.query.views.covered_seconds`)."""

    name: str
    kind: str
    since_s: int


@dataclass(frozen=True, slots=True)
class DependencyLink(CallStats):
    """Calls from `parent` to `child`, whose kind is service, database, queue or peer (an
    un-instrumented remote); quantiles of the child spans' durations. `parent` is a service,
    or a queue (`parent_kind`) whose messages `child`, a service, consumes."""

    parent: str
    child: str
    child_kind: str
    parent_kind: str = "service"


@dataclass(frozen=True, slots=True)
class Dependencies:
    """The service graph of a time range: every service that sent spans (linked or not), the
    first minute (epoch s) of the range with its spans, the links between them and to the
    databases, queues and peers they call, and until when those links are complete."""

    services: tuple[str, ...]
    links: tuple[DependencyLink, ...]
    since_s: Mapping[str, int] = field(default_factory=dict)  # by service: its first minute (epoch s)
    #: Until when the links are complete (epoch s; storage/sql/linked_until.sql); 0: up to now.
    linked_until_s: float = 0.0
