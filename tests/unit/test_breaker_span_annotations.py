"""What a breaker writes on the caller's span: name, outcome and state of each call, and a state change
as an event — on whichever span is current at that call, however the calls before it were traced."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from tracehouse.instrumentation.breakers import CallNotPermitted, CircuitBreaker, tracing
from tracehouse.instrumentation.breakers.tracing import NAME, OUTCOME, STATE

pytestmark = pytest.mark.usefixtures("clean_breakers")


class Boom(Exception):
    pass


def ok() -> str:
    return "ok"


def boom() -> None:
    raise Boom


@pytest.fixture
def traced(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[trace.Tracer, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # the breakers' own spans come from the global provider in a service (configure() sets it)
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("tracehouse.instrumentation.breakers"))
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


def parent_of(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def slow() -> str:
    time.sleep(0.3)
    return "late"


def test_a_timed_out_call_is_an_error_span_and_its_fallback_a_span_of_its_own(
    traced: tuple[trace.Tracer, InMemorySpanExporter],
) -> None:
    """Without them a timed-out call left only a client span cancelled with no status (the demo's
    slow phase: nothing in the trace said the call timed out, nor that a fallback answered)."""
    tracer, exporter = traced

    def fallback() -> str:
        with tracer.start_as_current_span("cached answer"):
            return "cached"

    b = CircuitBreaker("orders.payments", register=False, timeout=0.05, fallback=fallback)
    with tracer.start_as_current_span("POST /orders") as request:
        assert b.call(slow) == "cached"
    spans = by_name(exporter)
    timed_out, answered = spans["orders.payments"], spans["orders.payments fallback"]
    assert timed_out.status.status_code is StatusCode.ERROR
    assert timed_out.status.description == "timeout: orders.payments: no answer within 0.05 s"
    assert breaker_attributes(timed_out) == {NAME: "orders.payments", OUTCOME: "timeout", STATE: "CLOSED"}
    assert timed_out.end_time is not None
    assert timed_out.start_time is not None
    assert timed_out.end_time - timed_out.start_time >= 50_000_000
    assert answered.status.status_code is StatusCode.UNSET
    for span in (timed_out, answered):
        assert span.parent is not None
        assert span.parent.span_id == request.get_span_context().span_id
    assert parent_of(spans["cached answer"]) == answered.context.span_id


def test_a_short_circuit_is_an_error_span_and_a_success_adds_none(
    traced: tuple[trace.Tracer, InMemorySpanExporter],
) -> None:
    tracer, exporter = traced
    b = CircuitBreaker("orders.inventory", register=False)
    with tracer.start_as_current_span("fine"):
        b.call(ok)
    assert sorted(by_name(exporter)) == ["fine"]  # a successful call costs no span
    b.force_open()
    with tracer.start_as_current_span("refused"), pytest.raises(CallNotPermitted):
        b.call(ok)
    refused = by_name(exporter)["orders.inventory"]
    assert refused.status.status_code is StatusCode.ERROR
    assert refused.status.description == "short_circuited: orders.inventory: the circuit is forced open"
    assert breaker_attributes(refused)[OUTCOME] == "short_circuited"


def test_an_async_timeout_and_fallback_too(traced: tuple[trace.Tracer, InMemorySpanExporter]) -> None:
    tracer, exporter = traced

    async def late() -> str:
        await asyncio.sleep(1)
        return "late"

    async def fallback() -> str:
        return "cached"

    b = CircuitBreaker("gateway.orders", register=False, timeout=0.05, fallback=fallback)

    async def request() -> str:
        with tracer.start_as_current_span("GET /"):
            return await b.call_async(late)

    assert asyncio.run(request()) == "cached"
    spans = by_name(exporter)
    assert spans["gateway.orders"].status.status_code is StatusCode.ERROR
    assert parent_of(spans["gateway.orders fallback"]) == spans["GET /"].context.span_id


class _Broken(SpanProcessor):
    """A span processor that fails on every span: tracing broken, the service must not notice."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        raise RuntimeError("processor broke on start")

    def on_end(self, span: ReadableSpan) -> None:
        raise RuntimeError("processor broke on end")


def test_broken_tracing_never_reaches_the_call_nor_its_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = TracerProvider()
    provider.add_span_processor(_Broken())
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("tracehouse.instrumentation.breakers"))
    b = CircuitBreaker("orders.payments", register=False, timeout=0.05, fallback=lambda: "cached")
    assert b.call(slow) == "cached"  # a timeout span and a fallback span, neither of which can start
    b.force_open()
    assert b.call(ok) == "cached"

    async def late() -> str:
        await asyncio.sleep(1)
        return "late"

    a = CircuitBreaker("gateway.orders", register=False, timeout=0.05, fallback=lambda: "cached")
    assert asyncio.run(a.call_async(late)) == "cached"
