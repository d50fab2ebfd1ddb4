"""A durable job queue in one SQLite table: the demo's queue, with no broker to run.

Why a table and not a queue process: producers and consumers share only a file, a claim is one
atomic ``UPDATE … RETURNING``, jobs survive restarts, and there is no extra process to supervise.
A claimed job is hidden from other consumers for ``visibility_timeout`` seconds (as in SQS), then
deleted once handled, or released for another try (at most ``max_attempts``).

Like client libraries with native OpenTelemetry support, it traces itself through the
OpenTelemetry *API* only — a no-op until an SDK is installed (``tracehouse-run`` does): publishing
is a PRODUCER span whose context travels in the job's headers; handling is a CONSUMER span that
links to it, as the messaging semantic conventions ask. It talks to SQLite through stdlib
``sqlite3``, which nothing here instruments, so the queue shows as a queue, not as a database.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

__all__ = ["SYSTEM", "Job", "JobQueue"]

_log = logging.getLogger("tracehouse.demo.jobqueue")

#: ``messaging.system`` of its spans.
SYSTEM = "jobqueue"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    destination TEXT NOT NULL,
    body TEXT NOT NULL,
    headers TEXT NOT NULL,
    enqueued_at REAL NOT NULL,
    visible_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_next ON jobs (destination, visible_at, id);
"""

_CLAIM = """
UPDATE jobs SET visible_at = :now + :hide, attempts = attempts + 1
WHERE id = (SELECT id FROM jobs WHERE destination = :destination AND visible_at <= :now ORDER BY id LIMIT 1)
RETURNING id, body, headers, attempts
"""


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    body: dict[str, Any]
    headers: dict[str, str]
    attempts: int


class JobQueue:
    """One destination (a named queue) in the SQLite file ``path``; safe across threads and processes.
    Spans go to ``tracer_provider``, by default the global one (as contrib instrumentations do)."""

    def __init__(
        self,
        path: Path,
        destination: str,
        visibility_timeout: float = 30.0,
        max_attempts: int = 3,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self.destination = destination
        self._tracer = trace.get_tracer(__name__, tracer_provider=tracer_provider)
        self.visibility_timeout = visibility_timeout
        self.max_attempts = max_attempts
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def publish(self, body: Mapping[str, Any]) -> int:
        """Enqueue ``body`` (JSON-able) under a PRODUCER span; returns the job id."""
        with self._tracer.start_as_current_span(
            f"publish {self.destination}", kind=SpanKind.PRODUCER, attributes=self._attributes("publish", "publish")
        ) as span:
            headers: dict[str, str] = {}
            propagate.inject(headers)  # the creation context: this span's
            job_id = self._insert(json.dumps(body), json.dumps(headers))
            span.set_attribute("messaging.message.id", str(job_id))
            return job_id

    def depth(self) -> int:
        """Jobs waiting or in flight."""
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM jobs WHERE destination = ?", (self.destination,)).fetchone()
        return int(row[0])

    def handle_next(self, handler: Callable[[dict[str, Any]], None]) -> bool:
        """Claim the next visible job and run ``handler`` on its body under a CONSUMER span; False
        when there was none. A failing handler never raises here: the job is retried or dropped."""
        job = self._claim()
        if job is None:
            return False
        with self._tracer.start_as_current_span(
            f"process {self.destination}",
            kind=SpanKind.CONSUMER,
            links=_creation_links(job.headers),
            attributes={**self._attributes("process", "process"), "messaging.message.id": str(job.id)},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                handler(job.body)
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
                self._settle_failed(job)
            else:
                self._delete(job.id)
        return True

    def _attributes(self, operation_type: str, operation_name: str) -> dict[str, str]:
        return {
            "messaging.system": SYSTEM,
            "messaging.destination.name": self.destination,
            "messaging.operation.type": operation_type,
            "messaging.operation.name": operation_name,
        }

    def _insert(self, body: str, headers: str) -> int:
        now = time.time()
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO jobs (destination, body, headers, enqueued_at, visible_at) VALUES (?, ?, ?, ?, ?)",
                (self.destination, body, headers, now, now),
            )
        return int(cursor.lastrowid or 0)

    def _claim(self) -> Job | None:
        params = {"now": time.time(), "hide": self.visibility_timeout, "destination": self.destination}
        with self._lock:
            row = self._db.execute(_CLAIM, params).fetchone()
        if row is None:
            return None
        return Job(int(row[0]), json.loads(row[1]), json.loads(row[2]), int(row[3]))

    def _settle_failed(self, job: Job) -> None:
        if job.attempts >= self.max_attempts:
            _log.warning("job %d on %s failed %d times, dropped", job.id, self.destination, job.attempts)
            self._delete(job.id)
            return
        with self._lock:
            self._db.execute("UPDATE jobs SET visible_at = ? WHERE id = ?", (time.time(), job.id))

    def _delete(self, job_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))


def _creation_links(headers: Mapping[str, str]) -> list[Link]:
    """A link to the producer's span when the job carries its context (not a parent: a job may be
    handled long after, and its handling is a trace of its own)."""
    context = trace.get_current_span(propagate.extract(headers)).get_span_context()
    return [Link(context)] if context.is_valid else []
