"""Spans lost while the collector is away: counted, and reported once when it is back.

The SDK's batch processor logs a warning for every span it drops from its full queue, and its own
duplicate filter hides the repeats of the next 20 s: how many spans a collector outage cost is never
told. :class:`DropCounter` counts those records (ahead of the SDK's filter) and lets only the first of
an outage through; :class:`ReportingExporter` also counts the spans of exports that failed, and with
the first export that succeeds again logs one line with both totals. Neither may ever raise into the
service or block it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = [
    "DROPS",
    "EXIT_GRACE_S",
    "EXPORTER_LOGGER",
    "QUIET",
    "SDK_QUEUE_LOGGER",
    "DropCounter",
    "QuietOutage",
    "ReportingExporter",
    "count_queue_drops",
]

_log = logging.getLogger("tracehouse.instrumentation")

#: The logger of the SDK's batch processor, and the start of its message for each span dropped.
SDK_QUEUE_LOGGER = "opentelemetry.sdk._shared_internal"
_QUEUE_FULL = "Queue full, dropping"
#: The logger of the SDK's OTLP/HTTP span exporter: its retries and failed exports.
EXPORTER_LOGGER = "opentelemetry.exporter.otlp.proto.http.trace_exporter"
#: How long a stopping process goes on exporting without a success before it gives its last spans up.
EXIT_GRACE_S = 2.0


class DropCounter(logging.Filter):
    """A filter on the SDK's batch-processor logger: counts its "queue full" records and lets only the
    first since the last :meth:`take` through. Any other record passes untouched."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if not (isinstance(record.msg, str) and record.msg.startswith(_QUEUE_FULL)):
            return True
        with self._lock:
            self._dropped += 1
            return self._dropped == 1

    def take(self) -> int:
        """The spans dropped since the last call; the count starts again from zero."""
        with self._lock:
            dropped, self._dropped = self._dropped, 0
            return dropped


#: The process's counter: the SDK logs from one logger whatever the provider.
DROPS = DropCounter()
_attach_lock = threading.Lock()


def count_queue_drops() -> DropCounter:
    """Put :data:`DROPS` first among the SDK batch-processor logger's filters (once) and return it:
    a filter that refuses a record ends the chain, so the SDK's duplicate filter must come after it."""
    logger = logging.getLogger(SDK_QUEUE_LOGGER)
    with _attach_lock:
        if DROPS not in logger.filters:
            logger.filters.insert(0, DROPS)
    return DROPS


class QuietOutage(logging.Filter):
    """A filter on the exporter's logger: while :attr:`outage` is set (an export failed and none has
    succeeded since), its records are dropped; the failed export that started the outage was told."""

    def __init__(self) -> None:
        super().__init__()
        self.outage = False

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.outage


#: The process's filter, like :data:`DROPS`: one exporter logger whatever the provider.
QUIET = QuietOutage()


def quiet_outages() -> QuietOutage:
    """Put :data:`QUIET` on the SDK exporter's logger (once) and return it."""
    logger = logging.getLogger(EXPORTER_LOGGER)
    with _attach_lock:
        if QUIET not in logger.filters:
            logger.addFilter(QUIET)
    return QUIET


class ReportingExporter(SpanExporter):
    """Exports through ``exporter``; counts the spans of failed exports and, with the next export that
    succeeds, logs how many spans were lost since the last success (failed exports and queue drops).
    :meth:`closing` bounds the retries of a stopping process; :meth:`shutdown` tells what it could not send."""

    def __init__(
        self, exporter: SpanExporter, destination: str, drops: DropCounter = DROPS, quiet: QuietOutage = QUIET
    ) -> None:
        self._exporter = exporter
        self._destination = destination
        self._drops = drops
        self._quiet = quiet
        self._failed = 0
        self._in_flight = 0
        self._stop_lock = threading.Lock()
        self._stopped = False
        self._told = False
        self._closing_since: float | None = None
        self._last_success = 0.0
        self._closed = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        # The batch processor calls this from its one worker thread, under its export lock.
        if self._stopped:
            self._failed += len(spans)
            return SpanExportResult.FAILURE
        self._in_flight = len(spans)
        try:
            result = self._exporter.export(spans)
        finally:
            self._in_flight = 0
        if result is SpanExportResult.SUCCESS:
            self._last_success = time.monotonic()
            self._quiet.outage = False
            self._report()
        else:
            self._failed += len(spans)
            self._quiet.outage = True
        return result

    def _report(self) -> None:
        failed, dropped = self._failed, self._drops.take()
        if failed or dropped:
            self._failed = 0
            _log.warning(
                "tracehouse: exporting to %s works again; %d spans were lost while it did not "
                "(%d dropped from the full queue, %d in failed exports)",
                self._destination,
                failed + dropped,
                dropped,
                failed,
            )

    def closing(self) -> None:
        """The process is stopping: exports go on while they succeed (a slow collector gets the rest of
        the queue); once :data:`EXIT_GRACE_S` pass without one (a collector down, refusing or stalled),
        an export still retrying gives up (the exporter's shutdown wakes its back-off) and later ones
        fail at once. Once; :meth:`shutdown` ends the watch."""
        with self._stop_lock:
            if self._closing_since is not None:
                return
            self._closing_since = time.monotonic()
        threading.Thread(target=self._watch_progress, name="tracehouse-exit-grace", daemon=True).start()

    @property
    def given_up(self) -> bool:
        """Whether exporting stopped: at shutdown, or for want of progress while closing."""
        return self._stopped

    def _watch_progress(self) -> None:
        assert self._closing_since is not None
        while not self._closed.is_set():
            idle = time.monotonic() - max(self._closing_since, self._last_success)
            if idle >= EXIT_GRACE_S:
                self._stop_exporting()
                return
            self._closed.wait(EXIT_GRACE_S - idle)

    def _stop_exporting(self) -> None:
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        self._exporter.shutdown()

    def shutdown(self) -> None:
        """Stop exporting; say how many spans were not sent (an export still in flight counts: a
        collector that accepts and never answers is given up at exit, not waited for)."""
        self._closed.set()
        self._stop_exporting()
        self._quiet.outage = False  # the process's filter: a later provider's first failure is told
        with self._stop_lock:
            if self._told:
                return  # once: an export given up may still fail later, in the worker left behind
            self._told = True
        lost = self._failed + self._in_flight + self._drops.take()
        if lost:
            _log.warning(
                "tracehouse: %d spans were not sent: %s did not take them before the process stopped",
                lost,
                self._destination,
            )

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._exporter.force_flush(timeout_millis)
