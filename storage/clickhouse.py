"""The ClickHouse implementation of the storage seams (embedded chDB or a server).

Writes and reads use separate clients so a long query never waits behind an insert's
client lock. Every value reaches ClickHouse as a bound parameter or as insert data.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import re
from collections.abc import Iterator, Sequence
from importlib import resources
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, DatabaseError

from tracehouse.instrumentation.breakers.wire import BreakerReport
from tracehouse.storage import breakers, linker, red, search, sql
from tracehouse.storage.batch import COLUMNS, OtlpPayload, SpanBatch
from tracehouse.storage.client import connect, ensure_database
from tracehouse.storage.config import StoreConfig
from tracehouse.storage.errors import InvalidQuery, StorageError, StoreBusy, StoreRejected, StoreUnavailable
from tracehouse.storage.linker import CONSUMER_KIND
from tracehouse.storage.lock import DataDirLock
from tracehouse.storage.migrate import (
    apply_migrations,
    apply_retention,
    modified_views,
    recorded_versions,
    reload_views,
)
from tracehouse.storage.model import (
    MAX_TRACE_SPANS,
    CallStats,
    Dependencies,
    DependencyLink,
    Event,
    Link,
    Operation,
    OperationStats,
    RedPoint,
    RedQuery,
    Span,
    TraceQuery,
    TraceSummary,
)

log = logging.getLogger(__name__)

OTLP_SCHEMA = str(resources.files("tracehouse.storage").joinpath("schema", "otlp_trace.proto"))

SPAN_TABLE = "otel_traces"
#: Autocomplete reads at most this many spans of the range: fast on any volume, and the frequent
#: keys and values are in any sample of this size.
SAMPLE_SPANS = 100_000
OTLP_TABLE = "otel_traces_otlp"
_INSERT_SETTINGS = {"deduplicate_blocks_in_dependent_materialized_views": 1}
_OTLP_SETTINGS = {
    "format_schema": f"{OTLP_SCHEMA}:ExportTraceServiceRequest",
    "input_format_protobuf_oneof_presence": 1,
}
#: Bounds of one read of the API (every `_run`; the linker and inserts are on the writers). Far
#: above what a read needs — on `make bench-query`'s 10M spans searches answer in 0.2-0.9 s (p95),
#: the slowest condition (`absent` of a key every span has, over all of them) in 2.5 s, a
#: 100,000-span trace in 1.5 s and 64-128 MiB — so only a runaway query meets them, and it then
#: fails alone (`StoreBusy`) rather than holding the reader and the engine's memory from the others.
#: `readonly = 2`: a read can change no data or schema (it may still set its own settings).
READ_SETTINGS: dict[str, Any] = {"max_execution_time": 30, "max_memory_usage": 512 * 2**20, "readonly": 2}
#: The engine's codes for a query over its `max_execution_time` and over a memory limit.
_TIMEOUT_CODE = 159
_MEMORY_CODE = 241
#: SETTING_CONSTRAINT_VIOLATION: a user profile's bounds refuse a setting's value.
_CONSTRAINT_CODE = 452


def read_settings(config: StoreConfig) -> dict[str, Any]:
    """`READ_SETTINGS`; on the embedded engine a read takes at most half its memory cap (inserts
    need the rest)."""
    settings = dict(READ_SETTINGS)
    if config.embedded and config.memory_limit:
        settings["max_memory_usage"] = min(settings["max_memory_usage"], config.memory_limit // 2)
    return settings


class ClickHouseStore:
    """`SpanWriter` and `TraceReader` over one ClickHouse database. See `tracehouse.storage.seams`.

    `writers` clients insert concurrently (one insert each at a time); one more client reads.
    """

    def __init__(self, config: StoreConfig, *, migrate: bool = True, writers: int = 2) -> None:
        config.validate()
        self.config = config
        self._lock = DataDirLock(config.path) if config.embedded else None
        try:
            if migrate:
                ensure_database(config)
            self._reader = connect(config)
            self._fixed_settings: frozenset[str] | None = None  # read settings its user may not change
            if migrate:
                applied = apply_migrations(self._reader, config.ttl_days)
                if config.retention_given:
                    apply_retention(self._reader, config.ttl_days)
                if config.embedded:  # no other writer: see `reload_views`
                    reload_views(self._reader, modified_views(applied))
            self._writers: queue.SimpleQueue[Client] = queue.SimpleQueue()
            self._all_writers = [connect(config) for _ in range(writers)]
            for client in self._all_writers:
                self._writers.put(client)
            self._purger: Client | None = None
        except BaseException:
            self._release_lock()
            raise

    # -- SpanWriter -------------------------------------------------------------------

    def write(self, batch: SpanBatch) -> None:
        if not len(batch):
            return
        settings = dict(_INSERT_SETTINGS, insert_deduplication_token=batch.token)
        try:
            with self._writer() as client:
                client.insert(
                    SPAN_TABLE, batch.columns(), column_names=COLUMNS, column_oriented=True, settings=settings
                )
        except ClickHouseError as exc:
            raise insert_error(exc, f"insert of {len(batch)} spans into {SPAN_TABLE} failed") from exc

    def write_otlp(self, payload: OtlpPayload) -> None:
        if not payload.spans:
            return
        settings = dict(_INSERT_SETTINGS, **_OTLP_SETTINGS, insert_deduplication_token=payload.token)
        try:
            with self._writer() as client:
                client.raw_insert(OTLP_TABLE, insert_block=payload.data, fmt="Protobuf", settings=settings)
        except ClickHouseError as exc:
            raise insert_error(exc, f"insert of {payload.spans} OTLP spans failed") from exc

    # -- TraceReader ------------------------------------------------------------------

    def get_trace(self, trace_id: str, limit: int = MAX_TRACE_SPANS) -> list[Span]:
        rows = self._query("trace_spans", {"trace_id": trace_id, "limit": limit})
        return [_span(row) for row in rows]

    def find_traces(self, query: TraceQuery) -> list[TraceSummary]:
        plan = search.NewestFirst(query)
        summaries: dict[str, TraceSummary] = {}  # kept from window to window
        while True:
            candidates = [(row[0], int(row[1])) for row in self._run(*plan.candidates())]
            if plan.may_answer(candidates):
                summaries.update(self._summaries([t for t, _ in candidates if t not in summaries]))
            ids = plan.answer(candidates, {trace_id: s.start_ns for trace_id, s in summaries.items()})
            if ids is not None:
                return [summaries[trace_id] for trace_id in ids]

    def _summaries(self, ids: list[str]) -> dict[str, TraceSummary]:
        """Summaries from the per-trace table; of traces it lacks (stored before it), from their spans."""
        if not ids:
            return {}
        found = {row[0]: _summary(row) for row in self._run(search.SUMMARIES, {"ids": ids})}
        missing = [trace_id for trace_id in ids if trace_id not in found]
        if missing:
            found.update((row[0], _summary(row)) for row in self._run(search.SPAN_SUMMARIES, {"ids": missing}))
        return found

    def red(self, query: RedQuery) -> list[RedPoint]:
        text, params = red.red_series(query)
        return [_red_point(row) for row in self._run(text, params, "red")]

    def operation_stats(self, service: str, start_ns: int, end_ns: int, limit: int = 100) -> list[OperationStats]:
        params = {"service": service, "start": start_ns, "end": end_ns, "limit": limit}
        return [
            OperationStats(name=row[0], kind=row[1], since_s=int(row[5]), **CallStats.of(row[2], row[3], row[4]))
            for row in self._query("operation_stats", params)
        ]

    def dependencies(self, start_ns: int, end_ns: int) -> Dependencies:
        window = {"start": start_ns, "end": end_ns}
        services = self._query("active_services", window)
        links = tuple(_link(row) for row in self._query("links", window))
        ((linked_until,),) = self._query("linked_until", window)
        since = {row[0]: int(row[1]) for row in services}
        return Dependencies(tuple(row[0] for row in services), links, since, float(linked_until))

    def link(self, from_ns: int, to_ns: int, spans_per_slice: int | None = None) -> None:
        """Run the dependency linker over the minutes of [from_ns, to_ns) (see `linker`), in
        slices of `spans_per_slice` spans (default `linker.SPANS_PER_SLICE`)."""
        try:
            with self._writer() as client:
                linker.link_minutes(client, from_ns, to_ns, spans_per_slice=spans_per_slice)
        except ClickHouseError as exc:
            raise insert_error(exc, "linking dependencies failed") from exc

    def cancel_linking(self) -> None:
        """Cancel the dependency linker's running statement, if any (at shutdown): it fails
        with `StorageError` and its minutes stay dirty for the next run."""
        try:
            self._reader.command(linker.CANCEL, parameters={"mark": linker.MARK})
        except ClickHouseError as exc:
            raise insert_error(exc, "cancelling the dependency linker failed") from exc

    def link_recent(self, since_ms: int, spans_per_slice: int | None = None) -> int:
        """Relink the minutes that inserts after `since_ms` touched, in slices of `spans_per_slice`
        spans (default `linker.SPANS_PER_SLICE`); returns the new watermark."""
        try:
            with self._writer() as client:
                return linker.link_dirty(client, since_ms, spans_per_slice)
        except ClickHouseError as exc:
            raise insert_error(exc, "linking dependencies failed") from exc

    def attribute_keys(
        self, start_ns: int, end_ns: int, service: str | None = None, limit: int = 200
    ) -> list[tuple[str, str, int]]:
        params = {"start": start_ns, "end": end_ns, "service": service or "", "sample": SAMPLE_SPANS, "limit": limit}
        return [(row[0], row[1], int(row[2])) for row in self._query("attribute_keys", params)]

    def attribute_values(
        self, key: str, start_ns: int, end_ns: int, prefix: str = "", service: str | None = None, limit: int = 50
    ) -> list[tuple[str, int]]:
        params = {
            "key": key, "prefix": prefix, "start": start_ns, "end": end_ns, "service": service or "",
            "sample": SAMPLE_SPANS, "limit": limit,
        }  # fmt: skip
        return [(row[0], int(row[1])) for row in self._query("attribute_values", params)]

    # -- BreakerStore -----------------------------------------------------------------

    def write_breakers(self, reports: Sequence[tuple[BreakerReport, str]]) -> None:
        """Insert breaker reports (``(report, "push" | "pull")``); durable when it returns."""
        data = breakers.rows(reports)
        if not data:
            return
        try:
            with self._writer() as client:
                client.insert(breakers.TABLE, data, column_names=breakers.COLUMNS)
        except ClickHouseError as exc:
            raise insert_error(exc, f"insert of {len(data)} breaker samples failed") from exc

    def breaker_window(
        self, cluster: str, start_s: int, end_s: int, instance: str | None = None, kind: str | None = None
    ) -> list[breakers.InstanceWindow]:
        """Per instance × breaker sums over the seconds [start_s, end_s), by kind, name, instance."""
        text, params = breakers.window_query(instance, kind)
        params.update(cluster=cluster, start=start_s, end=end_s)
        return [breakers.instance_window(row) for row in self._run(text, params, "breaker_window")]

    def breaker_history(
        self, cluster: str, kind: str, name: str, start_s: int, end_s: int, step_s: int
    ) -> list[breakers.HistoryPoint]:
        """One breaker's sums per step over [start_s, end_s); steps without data are absent."""
        params = {"cluster": cluster, "kind": kind, "name": name, "start": start_s, "end": end_s, "step": step_s}
        return [breakers.history_point(row) for row in self._run(breakers.HISTORY, params, "breaker_history")]

    def breaker_clusters(self, since_s: int) -> list[tuple[str, int, int, int]]:
        """(cluster, breakers, instances, newest second) of every cluster that reported since ``since_s``."""
        rows = self._run(breakers.CLUSTERS, {"since": since_s}, "breaker_clusters")
        return [(row[0], int(row[1]), int(row[2]), int(row[3])) for row in rows]

    def services(self) -> list[str]:
        return [row[0] for row in self._query("services", {})]

    def operations(self, service: str) -> list[Operation]:
        return [Operation(row[0], row[1], int(row[2])) for row in self._query("operations", {"service": service})]

    # -- housekeeping -----------------------------------------------------------------

    def schema_version(self) -> int:
        """The highest migration version the database records (read-only; 0: none);
        `StoreUnavailable` when the store does not answer."""
        try:
            return max(recorded_versions(self._reader, self.config.database), default=0)
        except ClickHouseError as exc:
            raise StoreUnavailable(f"reading the schema version failed: {_reason(exc)}") from exc

    def memory_limit(self) -> int:
        """The engine's memory limit in bytes, as it applies it (0: none)."""
        rows = self._reader.query(
            "SELECT toUInt64(value) FROM system.server_settings WHERE name = 'max_server_memory_usage'"
        ).result_rows
        return int(rows[0][0]) if rows else 0

    def release_freed_memory(self) -> None:
        """Hand the pages the embedded engine freed back to the system now (`SYSTEM JEMALLOC
        PURGE`; its allocator keeps them for 5 s otherwise, and has no thread of its own to do it)."""
        if self._purger is None:
            self._purger = connect(self.config)
        try:
            self._purger.command("SYSTEM JEMALLOC PURGE")
        except ClickHouseError as exc:
            raise insert_error(exc, "releasing the engine's freed memory failed") from exc

    def client(self) -> Client:
        """A client on the store's database, for tests and admin commands (not the hot path)."""
        return self._reader

    def close(self) -> None:
        for client in (*self._all_writers, self._reader, *filter(None, [self._purger])):
            client.close()
        self._release_lock()

    @contextlib.contextmanager
    def _writer(self) -> Iterator[Client]:
        """A writer client of its own for the duration of one insert: inserts on different
        clients run in parallel (the engine releases the GIL), on one client they queue."""
        client = self._writers.get()
        try:
            yield client
        finally:
            self._writers.put(client)

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()

    def _read_settings(self) -> dict[str, Any]:
        """`read_settings` less those the reader's user may not change: a read-only ClickHouse user
        (the natural one for a query process) has limits of its own, and sending ours made
        clickhouse-connect refuse every read ("Setting max_execution_time is readonly"; review)."""
        wanted = read_settings(self.config)
        if self._fixed_settings is None:
            known = self._reader.server_settings
            self._fixed_settings = frozenset(k for k in wanted if k in known and known[k].readonly)
        return {k: v for k, v in wanted.items() if k not in self._fixed_settings}

    def _query(self, name: str, parameters: dict[str, Any]) -> Sequence[Sequence[Any]]:
        return self._run(sql.load(name), parameters, name)

    def _run(self, text: str, parameters: dict[str, Any], name: str = "search") -> Sequence[Sequence[Any]]:
        settings = self._read_settings()
        try:
            return self._reader.query(text, parameters=parameters, settings=settings).result_rows
        except ClickHouseError as exc:
            code = _code(exc)
            if code == _CONSTRAINT_CODE and settings:
                # The user's profile bounds these settings below ours: its limits hold instead.
                log.warning("the ClickHouse user's profile refuses the read limits (%s); reading without them", exc)
                self._fixed_settings = frozenset(settings)
                return self._run(text, parameters, name)
            if code in _INVALID_QUERY_CODES:
                raise InvalidQuery(_first_line(exc)) from exc
            if code == _TIMEOUT_CODE:
                limit = settings.get("max_execution_time", "the user's")
                raise StoreBusy(f"query {name} ran past the {limit} s a read may take: {exc}") from exc
            if code == _MEMORY_CODE:
                raise StoreBusy(f"query {name} ran out of memory: {exc}") from exc
            raise StorageError(f"query {name} failed: {exc}") from exc


#: ClickHouse error codes that say "not now" rather than "not this data": memory, too many
#: parts, timeouts, network, read-only replicas, cancelled queries, Keeper, unknown insert status.
_TRANSIENT_CODES = frozenset({3, 159, 202, 209, 210, 236, 241, 242, 252, 319, 394, 425, 999})
#: Codes that say "not this store, as it is": the disk (full, unwritable, missing files), access
#: (users, passwords, quotas, read-only), the schema (unknown table, column, format schema). Data
#: would be refused the same way, so it is spooled (or answered 503), never set aside as bad data
#: or answered 400 — a full disk made every acknowledged span a `.rejected` file (operator review).
_STORE_CODES = frozenset({
    8, 16, 24, 47, 60, 74, 75, 76, 81, 83, 88, 107, 164, 172, 173, 192, 193, 194, 201, 204, 214, 243,
    291, 294, 400, 434, 458, 497, 516, 586, 700, 720, 734, 774,
})  # fmt: skip
_CODE = re.compile(r"Code: (\d+)\.")
#: The same as a filesystem error of the engine (codes 1000/1001, POCO_/STD_EXCEPTION, name no cause).
_STORE_ERRNO = re.compile(r"No space left on device|Read-only file system|Permission denied|Disk quota exceeded")
#: Of those, what passes in a moment: memory limit exceeded, too many parts, too many queries.
_BUSY_CODES = frozenset({202, 241, 252})


#: Errors caused by what a reader asked for: a regex that does not compile, a bad pattern.
_INVALID_QUERY_CODES = frozenset({427})


def _code(exc: Exception) -> int:
    match = _CODE.search(str(exc))
    return int(match[1]) if match else -1


_IN_FILE = re.compile(r" ?\(in file/uri [^)]*\)")


def _reason(exc: Exception) -> str:
    """The engine's reason for refusing an insert, told to the sender: its first line, without the
    path of the temporary file the embedded engine read the data from (nor the stack trace)."""
    return _IN_FILE.sub("", str(exc).strip().split("\n", 1)[0])[:500]


def _first_line(exc: Exception) -> str:
    text = str(exc).split("DB::Exception: ", 1)[-1]
    return text.split("\n", 1)[0][:300]


def _link(row: Sequence[Any]) -> DependencyLink:
    parent, child, kind, calls, errors, quantiles = row
    stats = CallStats.of(calls, errors, quantiles)
    if kind == CONSUMER_KIND:  # queue -> the service consuming it
        return DependencyLink(parent=parent, child=child, child_kind="service", parent_kind="queue", **stats)
    return DependencyLink(parent=parent, child=child, child_kind=kind, **stats)


def _red_point(row: Sequence[Any]) -> RedPoint:
    start, calls, errors, quantiles = row
    return RedPoint(start_ns=int(start) * 10**9, **CallStats.of(calls, errors, quantiles))


def _summary(row: Sequence[Any]) -> TraceSummary:
    trace_id, service, operation, start, duration, spans, errors, (names, counts) = row
    services = tuple(sorted(zip(names, (int(c) for c in counts), strict=True)))
    return TraceSummary(trace_id, service, operation, int(start), int(duration), int(spans), int(errors), services)


def insert_error(exc: ClickHouseError, what: str) -> StorageError:
    """`StoreRejected` when ClickHouse refused the data itself (a parse error, an overflow —
    it would refuse it again), `StoreBusy` when it lacked memory or parts for it just now, else
    `StoreUnavailable` (connection lost, disk full, access refused, schema missing ...)."""
    match = _CODE.search(str(exc))
    store_side = _STORE_ERRNO.search(str(exc)) is not None  # the disk or the access, told as a C++ exception
    if (
        isinstance(exc, DatabaseError)
        and match
        and int(match[1]) not in _TRANSIENT_CODES | _STORE_CODES
        and not store_side
    ):
        return StoreRejected(f"{what}: {_reason(exc)}")
    if match and int(match[1]) in _BUSY_CODES:
        return StoreBusy(f"{what}: {_reason(exc)}")
    return StoreUnavailable(f"{what}: {_reason(exc)}")


def _span(row: Sequence[Any]) -> Span:
    """A `trace_spans.sql` row (the otel_traces columns in order, times in ns) -> `Span`."""
    ts, trace_id, span_id, parent, state, name, kind, service = row[:8]
    resource, scope, version, attributes, duration, status, message = row[8:15]
    ev_ts, ev_name, ev_attrs, l_trace, l_span, l_state, l_attrs = row[15:22]
    events = tuple(Event(int(t), n, dict(a)) for t, n, a in zip(ev_ts, ev_name, ev_attrs, strict=True))
    links = tuple(Link(t, s, st, dict(a)) for t, s, st, a in zip(l_trace, l_span, l_state, l_attrs, strict=True))
    return Span(
        int(ts), trace_id, span_id, parent, state, name, kind, service, dict(resource), scope, version,
        dict(attributes), int(duration), status, message, events, links,
    )  # fmt: skip
