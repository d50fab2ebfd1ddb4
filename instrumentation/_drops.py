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
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = ["DROPS", "SDK_QUEUE_LOGGER", "DropCounter", "ReportingExporter", "count_queue_drops"]

_log = logging.getLogger("tracehouse.instrumentation")

#: The logger of the SDK's batch processor, and the start of its message for each span dropped.
SDK_QUEUE_LOGGER = "opentelemetry.sdk._shared_internal"
_QUEUE_FULL = "Queue full, dropping"


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


class ReportingExporter(SpanExporter):
    """Exports through ``exporter``; counts the spans of failed exports and, with the next export that
    succeeds, logs how many spans were lost since the last success (failed exports and queue drops)."""

    def __init__(self, exporter: SpanExporter, destination: str, drops: DropCounter = DROPS) -> None:
        self._exporter = exporter
        self._destination = destination
        self._drops = drops
        self._failed = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        # The batch processor calls this from its one worker thread, under its export lock.
        result = self._exporter.export(spans)
        if result is SpanExportResult.SUCCESS:
            self._report()
        else:
            self._failed += len(spans)
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

    def shutdown(self) -> None:
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._exporter.force_flush(timeout_millis)
