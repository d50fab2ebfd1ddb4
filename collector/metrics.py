"""Self-monitoring of the collector in the Prometheus text format (`GET /metrics` on the
OTLP/HTTP port): spans accepted and rejected, refused requests, queue, flushes, spool, and
the dependency linker's runs.

One registry per collector (not the process-global one), so several collectors in one
process — tests — never share counts.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from tracehouse.collector.spool import Spool

if TYPE_CHECKING:  # the puller (httpx) is imported only where streams are pulled
    from tracehouse.collector.hystrix_pull import HystrixPuller

CONTENT_TYPE = CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)

#: Seconds between two log lines about refused requests of one protocol and status.
REFUSAL_LOG_SECONDS = 10.0


class IngestMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.received = Counter(
            "tracehouse_ingest_spans_received", "Spans in the requests that were decoded (accepted + rejected)",
            ["protocol"], registry=self.registry,
        )  # fmt: skip
        self.accepted = Counter(
            "tracehouse_ingest_spans_accepted", "Spans acknowledged to senders (durable)", ["protocol"],
            registry=self.registry,
        )  # fmt: skip
        self.rejected = Counter(
            "tracehouse_ingest_spans_rejected",
            "Spans refused one by one, by reason: invalid (ids, links, fields) or outside_time_window",
            ["protocol", "reason"], registry=self.registry,
        )  # fmt: skip
        self.refused = Counter(
            "tracehouse_ingest_requests_refused", "Requests answered with an error, by status", ["protocol", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.flush_seconds = Histogram(
            "tracehouse_flush_seconds", "Time from taking one merged batch off the queue to its insert or spool",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=self.registry,
        )  # fmt: skip
        self.linker_runs = Counter(
            "tracehouse_linker_runs", "Dependency linker runs by outcome (a failed run's minutes wait for the next)",
            ["outcome"], registry=self.registry,
        )  # fmt: skip
        self.linker_seconds = Histogram(
            "tracehouse_linker_seconds", "Time one successful dependency linker run took",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120), registry=self.registry,
        )  # fmt: skip

        self._refusals: dict[tuple[str, str], tuple[float, int]] = {}  # (protocol, status) -> (logged at, since)

    def decoded(self, protocol: str, kept: int, rejected: int, outside_window: int) -> None:
        """Count a decoded request's spans: received, and rejected by reason."""
        self.received.labels(protocol).inc(kept + rejected)
        if outside_window:
            self.rejected.labels(protocol, "outside_time_window").inc(outside_window)
        if rejected > outside_window:
            self.rejected.labels(protocol, "invalid").inc(rejected - outside_window)

    def refuse(self, protocol: str, status: str, why: str) -> None:
        """Count a request answered with an error, and log it: the first of each protocol and
        status at once, then at most one line per `REFUSAL_LOG_SECONDS` with how many there were
        (a flood of bad requests must not flood the log). `why` is the answer's message."""
        self.refused.labels(protocol, status).inc()
        now = time.monotonic()
        logged_at, since = self._refusals.get((protocol, status), (-REFUSAL_LOG_SECONDS, 0))
        if now - logged_at < REFUSAL_LOG_SECONDS:
            self._refusals[protocol, status] = (logged_at, since + 1)
            return
        self._refusals[protocol, status] = (now, 0)
        more = f" (and {since} more since the last line)" if since else ""
        log.info("%s request refused with %s%s: %s", protocol, status, more, why[:300])

    def watch(
        self, queued_spans: object, stored_spans: object, busy_retries: object, set_aside: object, spool: Spool | None
    ) -> None:
        """Gauges read at scrape time from the pipeline (callables returning numbers) and spool."""
        for name, doc, read in (
            ("tracehouse_queue_spans", "Spans waiting in the ingest queue", queued_spans),
            ("tracehouse_stored_spans", "Spans written to the store since start", stored_spans),
            ("tracehouse_store_busy_retries", "Inserts tried again, alone, because the store was busy", busy_retries),
            ("tracehouse_set_aside_spans", "Acknowledged spans the store refused as data, set aside", set_aside),
        ):
            Gauge(name, doc, registry=self.registry).set_function(read)  # type: ignore[arg-type]
        if spool is not None:
            Gauge("tracehouse_spool_batches", "Batches waiting in the spool", registry=self.registry).set_function(
                lambda: len(spool)
            )
            Gauge("tracehouse_spool_bytes", "Bytes waiting in the spool", registry=self.registry).set_function(
                lambda: spool.bytes
            )
            Gauge(
                "tracehouse_write_ahead_batches", "Batches answered from the write-ahead log, not yet inserted",
                registry=self.registry,
            ).set_function(lambda: spool.logged)  # fmt: skip

    def watch_bytes_held(self, read: object) -> None:
        """The request bytes held now (raw and inflated), against `--max-inflight-bytes`."""
        Gauge(
            "tracehouse_ingest_bytes_held", "Request bytes held now (raw and inflated), up to --max-inflight-bytes",
            registry=self.registry,
        ).set_function(read)  # type: ignore[arg-type]  # fmt: skip

    def watch_puller(self, puller: HystrixPuller) -> None:
        """The hystrix.stream puller's counters (is each stream delivering? what did it cost?)."""
        for name, doc, read in (
            ("tracehouse_hystrix_streams_connected", "Streams open now", lambda: len(puller.connected_instances)),
            ("tracehouse_hystrix_frames", "Stream events read since start", lambda: puller.frames),
            ("tracehouse_hystrix_bad_frames", "Stream events not readable, skipped", lambda: puller.bad_frames),
            ("tracehouse_hystrix_reconnects", "Connections to a stream opened again", lambda: puller.reconnects),
            ("tracehouse_hystrix_dropped_reports", "Per-second reports dropped while the store refused them",
             lambda: puller.dropped_reports),
        ):  # fmt: skip
            Gauge(name, doc, registry=self.registry).set_function(read)

    def render(self) -> bytes:
        return generate_latest(self.registry)
