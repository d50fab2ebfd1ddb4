"""The demo's job queue on a real SQLite file: a job reaches one consumer, failed jobs are retried
then dropped, and the spans follow the messaging conventions — a PRODUCER publish whose context
travels in the job, a CONSUMER process span linked to it. And the fault schedule's phases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracerProvider, SpanKind, StatusCode

from tracehouse.demo.faults import FaultSchedule, Phase
from tracehouse.demo.jobqueue import JobQueue


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(spans: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    yield provider
    provider.shutdown()


@pytest.fixture
def jobs(tmp_path: Path, provider: TracerProvider) -> Iterator[JobQueue]:
    queue = JobQueue(tmp_path / "queue.sqlite", "shipments", max_attempts=2, tracer_provider=provider)
    yield queue
    queue.close()


def by_kind(exporter: InMemorySpanExporter, kind: SpanKind) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.kind == kind]


def test_a_published_job_is_handled_once_under_a_consumer_span_linked_to_its_publisher(
    jobs: JobQueue, spans: InMemorySpanExporter
) -> None:
    handled: list[dict[str, Any]] = []
    job_id = jobs.publish({"order": "o-1"})
    assert jobs.handle_next(handled.append)
    assert not jobs.handle_next(handled.append)
    assert handled == [{"order": "o-1"}]
    assert jobs.depth() == 0

    [publish] = by_kind(spans, SpanKind.PRODUCER)
    [process] = by_kind(spans, SpanKind.CONSUMER)
    assert publish.name == "publish shipments"
    assert process.name == "process shipments"
    for span, operation in ((publish, "publish"), (process, "process")):
        assert span.attributes is not None
        assert span.attributes["messaging.system"] == "jobqueue"
        assert span.attributes["messaging.destination.name"] == "shipments"
        assert span.attributes["messaging.operation.type"] == operation
        assert span.attributes["messaging.message.id"] == str(job_id)
    assert [link.context.span_id for link in process.links] == [publish.context.span_id]
    assert process.links[0].context.trace_id == publish.context.trace_id
    assert process.parent is None  # a trace of its own, linked, not a child


def test_a_claimed_job_is_hidden_from_other_consumers(tmp_path: Path, jobs: JobQueue) -> None:
    other = JobQueue(tmp_path / "queue.sqlite", "shipments")  # another process's view of the file
    seen_by_other: list[bool] = []
    jobs.publish({"order": "o-2"})
    try:
        assert jobs.handle_next(lambda _: seen_by_other.append(other.handle_next(lambda _: None)))
    finally:
        other.close()
    assert seen_by_other == [False]


def test_a_failing_job_is_retried_then_dropped(jobs: JobQueue, spans: InMemorySpanExporter) -> None:
    attempts: list[str] = []

    def refuse(job: dict[str, Any]) -> None:
        attempts.append(job["order"])
        raise RuntimeError("carrier refused")

    jobs.publish({"order": "o-3"})
    assert jobs.handle_next(refuse)  # attempt 1: released
    assert jobs.depth() == 1
    assert jobs.handle_next(refuse)  # attempt 2 of 2: dropped
    assert jobs.depth() == 0
    assert attempts == ["o-3", "o-3"]
    failed = by_kind(spans, SpanKind.CONSUMER)
    assert [s.status.status_code for s in failed] == [StatusCode.ERROR, StatusCode.ERROR]
    assert all(e.name == "exception" for s in failed for e in s.events)


def test_a_job_published_without_tracing_is_handled_without_a_link(
    tmp_path: Path, jobs: JobQueue, spans: InMemorySpanExporter
) -> None:
    untraced = JobQueue(tmp_path / "queue.sqlite", "shipments", tracer_provider=NoOpTracerProvider())
    try:
        untraced.publish({"order": "o-4"})
    finally:
        untraced.close()
    assert jobs.handle_next(lambda _: None)
    [process] = by_kind(spans, SpanKind.CONSUMER)
    assert process.links == ()


@pytest.mark.parametrize(
    ("offset", "phase"),
    [(0, Phase.HEALTHY), (24.9, Phase.HEALTHY), (25, Phase.SLOW), (50, Phase.FAILING), (69.9, Phase.FAILING),
     (70, Phase.RECOVERING), (99.9, Phase.RECOVERING), (100, Phase.HEALTHY), (125, Phase.SLOW)],
)  # fmt: skip
def test_fault_phases_follow_the_cycle(offset: float, phase: Phase) -> None:
    faults = FaultSchedule(100, epoch=1_000)
    assert faults.phase(1_000 + offset) is phase
    assert faults.extra_latency(1_000 + offset) == (1.0 if phase is Phase.SLOW else 0.0)
    assert faults.failing(1_000 + offset) is (phase is Phase.FAILING)


def test_no_cycle_is_always_healthy() -> None:
    assert {FaultSchedule(0).phase(t) for t in (0, 30, 60, 90)} == {Phase.HEALTHY}
