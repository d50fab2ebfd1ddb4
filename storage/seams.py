"""The storage seams: small protocols the collector and query API depend on.

The contract of each lives in its docstrings; `tracehouse.storage.clickhouse` is the
one implementation. Nothing outside `tracehouse.storage` may speak SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from tracehouse.instrumentation.breakers.wire import BreakerReport
from tracehouse.storage.batch import OtlpPayload, SpanBatch
from tracehouse.storage.breakers import HistoryPoint, InstanceWindow
from tracehouse.storage.model import (
    MAX_TRACE_SPANS,
    Dependencies,
    Operation,
    OperationStats,
    RedPoint,
    RedQuery,
    Span,
    TraceQuery,
    TraceSummary,
)


class SpanWriter(Protocol):
    def write(self, batch: SpanBatch) -> None:
        """Store every span of `batch`; durable when this returns.

        Idempotent per `batch.token`: writing a batch again with the same token (a
        retry, a spool replay) does not store its spans twice. Raises
        `StoreUnavailable` when the store cannot take the batch now (`StoreBusy` when it
        only lacked memory or parts for it at this moment) and `StoreRejected`
        when it refuses the data itself (it would refuse it again). After either, part of
        the batch may be stored: retry only with the same token.
        """
        ...

    def write_otlp(self, payload: OtlpPayload) -> None:
        """Store the spans of validated OTLP requests, decoded by the store itself.

        Same contract as `write`: durable on return, idempotent per `payload.token`.
        Ids must have been checked by the caller (the collector's OTLP decoder).
        """
        ...


class TraceReader(Protocol):
    def get_trace(self, trace_id: str, limit: int = MAX_TRACE_SPANS) -> list[Span]:
        """The spans of one trace, ordered by start time (ties by span id), at most `limit`
        (the earliest ones): a caller asks for one more to know whether it was cut.

        `trace_id` is 32 lowercase hex characters (callers normalise). No time range
        is needed: the trace-id lookup table bounds the read. An unknown id gives `[]`.
        """
        ...

    def find_traces(self, query: TraceQuery) -> list[TraceSummary]:
        """Summaries of the newest `query.limit` traces with a span matching every condition
        of `query`, newest first (trace start, then trace id: stable for equal starts).

        Summaries cover the whole trace, also spans outside the query's time range. Raises
        `InvalidQuery` for a condition the store cannot evaluate (a regex that does not compile).
        """
        ...

    def services(self) -> list[str]:
        """Names of every service that has sent spans still retained, sorted."""
        ...

    def operations(self, service: str) -> list[Operation]:
        """Span names of `service` with their span kinds, sorted by name then kind;
        `[]` for an unknown service."""
        ...

    def attribute_keys(
        self, start_ns: int, end_ns: int, service: str | None = None, limit: int = 200
    ) -> list[tuple[str, str, int]]:
        """(key, ``span``|``resource``, count) of attributes on spans started in [start_ns, end_ns),
        most frequent first, counted over a sample of the range's spans (autocomplete, not statistics)."""
        ...

    def attribute_values(
        self, key: str, start_ns: int, end_ns: int, prefix: str = "", service: str | None = None, limit: int = 50
    ) -> list[tuple[str, int]]:
        """(value, count) of attribute ``key`` (span, else resource) starting with ``prefix``, most
        frequent first, over a sample of the range's spans that carry the key."""
        ...


class MetricsReader(Protocol):
    def red(self, query: RedQuery) -> list[RedPoint]:
        """One point per step of [query.start_ns, query.end_ns), oldest first, empty steps
        as zeros. Steps of whole minutes come from the per-minute rollup, shorter ones from
        raw spans; quantiles are t-digest estimates (exact for small counts)."""
        ...

    def operation_stats(self, service: str, start_ns: int, end_ns: int, limit: int = 100) -> list[OperationStats]:
        """Every operation of ``service`` (name, kind) over the whole minutes overlapping [start_ns, end_ns),
        busiest first: calls, errors and duration quantiles from the per-minute rollup."""
        ...


class DependencyReader(Protocol):
    def dependencies(self, start_ns: int, end_ns: int) -> Dependencies:
        """The service graph of the whole minutes overlapping [start_ns, end_ns), as last
        linked (links lag the spans by the linker's interval). Services without links are
        included; an unknown range gives no services and no links."""
        ...


class BreakerStore(Protocol):
    def write_breakers(self, reports: Sequence[tuple[BreakerReport, str]]) -> None:
        """Insert per-second breaker samples, each ``(report, source)``. Durable when it returns.
        Idempotent per (cluster, kind, name, instance, second): a retried report replaces, never adds."""
        ...

    def breaker_window(
        self, cluster: str, start_s: int, end_s: int, instance: str | None = None, kind: str | None = None
    ) -> list[InstanceWindow]:
        """Per instance × breaker sums of the seconds in [start_s, end_s), ordered by kind, name,
        instance; state, concurrency, gauges and properties are the instance's newest. ``[]`` for an
        unknown cluster."""
        ...

    def breaker_history(
        self, cluster: str, kind: str, name: str, start_s: int, end_s: int, step_s: int
    ) -> list[HistoryPoint]:
        """One breaker's sums per step (aligned to multiples of ``step_s``), oldest first; steps
        without any sample are absent."""
        ...
