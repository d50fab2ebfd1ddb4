"""What a breaker writes on the caller's span: name, outcome and state of each call, and a state change
as an event — on whichever span is current at that call, however the calls before it were traced."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tracehouse.instrumentation.breakers import CallNotPermitted, CircuitBreaker
from tracehouse.instrumentation.breakers.tracing import NAME, OUTCOME, STATE

pytestmark = pytest.mark.usefixtures("clean_breakers")


class Boom(Exception):
    pass


def ok() -> str:
    return "ok"


def boom() -> None:
    raise Boom


@pytest.fixture
def traced() -> Iterator[tuple[trace.Tracer, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("test"), exporter
    provider.shutdown()


def by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exporter.get_finished_spans()}


def breaker_attributes(span: ReadableSpan) -> dict[str, Any]:
    return {key: value for key, value in (span.attributes or {}).items() if key.startswith("tracehouse.breaker.")}


def test_each_call_annotates_the_span_current_at_that_call(
    traced: tuple[trace.Tracer, InMemorySpanExporter],
) -> None:
    tracer, exporter = traced
    b = CircuitBreaker("orders.place", register=False, minimum_calls=1, failure_rate_threshold=20)
    assert b.call(ok) == "ok"  # no span: nothing to annotate
    with tracer.start_as_current_span("first"):
        b.call(ok)
    b.call(ok)
    with tracer.start_as_current_span("second"), pytest.raises(Boom):
        b.call(boom)
    with tracer.start_as_current_span("third"), pytest.raises(CallNotPermitted):
        b.call(ok)
    spans = by_name(exporter)
    assert breaker_attributes(spans["first"]) == {NAME: "orders.place", OUTCOME: "success", STATE: "CLOSED"}
    assert breaker_attributes(spans["second"]) == {NAME: "orders.place", OUTCOME: "failure", STATE: "OPEN"}
    assert breaker_attributes(spans["third"]) == {NAME: "orders.place", OUTCOME: "short_circuited", STATE: "OPEN"}
    (event,) = spans["second"].events
    assert event.name == "breaker.state_change"
    assert dict(event.attributes or {})["tracehouse.breaker.to"] == "OPEN"


def test_nested_spans_and_an_ended_span(traced: tuple[trace.Tracer, InMemorySpanExporter]) -> None:
    tracer, exporter = traced
    b = CircuitBreaker("stock.check", register=False)
    with tracer.start_as_current_span("outer"):
        b.call(ok)
        with tracer.start_as_current_span("inner"):
            b.call(ok)
        with tracer.start_as_current_span("ended") as ended:
            ended.end()
            b.call(ok)  # the current span no longer records: left alone
    spans = by_name(exporter)
    assert breaker_attributes(spans["outer"])[OUTCOME] == "success"
    assert breaker_attributes(spans["inner"])[OUTCOME] == "success"
    assert breaker_attributes(spans["ended"]) == {}


def test_concurrent_tasks_annotate_their_own_spans(traced: tuple[trace.Tracer, InMemorySpanExporter]) -> None:
    tracer, exporter = traced
    b = CircuitBreaker("search.query", register=False)

    async def answer(value: str) -> str:
        await asyncio.sleep(0)
        return value

    async def task(name: str) -> None:
        with tracer.start_as_current_span(name):
            await b.call_async(answer, name)

    async def main() -> None:
        await asyncio.gather(*(task(f"task-{i}") for i in range(4)))

    asyncio.run(main())
    spans = by_name(exporter)
    assert sorted(spans) == [f"task-{i}" for i in range(4)]
    assert all(breaker_attributes(span)[OUTCOME] == "success" for span in spans.values())
