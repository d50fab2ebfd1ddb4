"""Propagation as Brave and Sleuth services see it: B3's deny, defer and debug, every format read
whatever is injected, ``none``, the parent span id and 64-bit trace ids.

Real OpenTelemetry propagators, sampler and SDK tracer throughout (spans kept in memory): the point
is what a server span decides and what its outgoing calls carry.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import pytest
from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Span, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id

from tracehouse.instrumentation import InstrumentationConfig, _setup
from tracehouse.instrumentation.config import DEFAULT_PROPAGATORS
from tracehouse.instrumentation.log_correlation import correlation_fields
from tracehouse.instrumentation.propagation import HEADER_GETTER, build_propagator

TRACE_64 = "a1b2c3d4e5f60718"
TRACE_128 = "463ac35c9f6413ad48485a3953bb6124"
CALLER = "00f067aa0ba902b7"
OTHER_TRACE, OTHER_SPAN = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"


@dataclass
class Service:
    """A service's tracer (the sampler ``tracehouse-run`` builds) and propagator, spans kept in memory."""

    provider: TracerProvider
    exporter: InMemorySpanExporter
    propagators: tuple[str, ...] = DEFAULT_PROPAGATORS

    def serve(self, headers: Mapping[str, str]) -> Span:
        """The server span of a request carrying ``headers``, ended."""
        extracted = build_propagator(self.propagators).extract(headers, getter=HEADER_GETTER)
        span = self.provider.get_tracer("test").start_span("GET /", context=extracted, kind=SpanKind.SERVER)
        span.end()
        return span  # type: ignore[return-value]  # the SDK's span, not the API's

    def call(self, headers: Mapping[str, str]) -> tuple[Span, dict[str, str]]:
        """The headers an outgoing call made inside the request sends, and its client span."""
        extracted = build_propagator(self.propagators).extract(headers, getter=HEADER_GETTER)
        tracer = self.provider.get_tracer("test")
        token = otel_context.attach(extracted)  # as server instrumentations do, before their span starts
        try:
            with (
                tracer.start_as_current_span("GET /", context=extracted, kind=SpanKind.SERVER),
                tracer.start_as_current_span("GET downstream", kind=SpanKind.CLIENT) as client,
            ):
                sent: dict[str, str] = {}
                build_propagator(self.propagators).inject(sent)
        finally:
            otel_context.detach(token)
        return client, sent  # type: ignore[return-value]

    def stored(self) -> list[str]:
        return [span.name for span in self.exporter.get_finished_spans()]


def service(
    sampler: str = "always_on", propagators: tuple[str, ...] = DEFAULT_PROPAGATORS, ratio: float = 1.0
) -> Service:
    exporter = InMemorySpanExporter()
    config = InstrumentationConfig(sampler=sampler, sampler_ratio=ratio)
    provider = TracerProvider(sampler=_setup.build_sampler(config))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Service(provider, exporter, propagators)


@pytest.fixture
def shop() -> Iterator[Service]:
    shop = service()
    yield shop
    shop.provider.shutdown()


# --- 1: none ----------------------------------------------------------------------------------------


def test_none_extracts_a_context_a_server_can_attach() -> None:
    extracted = build_propagator(["none"]).extract({"traceparent": f"00-{TRACE_128}-{CALLER}-01"})
    assert isinstance(extracted, Context)
    assert not trace.get_current_span(extracted).get_span_context().is_valid  # callers are not followed
    token = otel_context.attach(extracted)  # what Flask and ASGI instrumentation do with it
    otel_context.detach(token)


def test_a_flask_app_answers_under_propagators_none() -> None:
    flask = pytest.importorskip("flask")
    flask_instrumentation = pytest.importorskip("opentelemetry.instrumentation.flask")
    app = flask.Flask("none")
    app.add_url_rule("/", "index", lambda: "ok")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(build_propagator(["none"]))
    flask_instrumentation.FlaskInstrumentor.instrument_app(app, tracer_provider=provider)
    try:
        answer = app.test_client().get("/", headers={"traceparent": f"00-{TRACE_128}-{CALLER}-01"})
    finally:
        flask_instrumentation.FlaskInstrumentor.uninstrument_app(app)
        propagate.set_global_textmap(previous)
        provider.shutdown()
    assert answer.status_code == 200
    (span,) = exporter.get_finished_spans()
    assert span.parent is None


# --- 2: B3 deny without ids ---------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{"b3": "0"}, {"X-B3-Sampled": "0"}], ids=["single", "multi"])
def test_a_b3_deny_without_ids_is_followed_and_propagated(shop: Service, headers: dict[str, str]) -> None:
    client, sent = shop.call(headers)
    assert not client.get_span_context().trace_flags.sampled
    assert shop.stored() == []
    assert sent["x-b3-sampled"] == "0"
    assert int(sent["traceparent"][-2:], 16) & 1 == 0  # W3C's sampled bit


@pytest.mark.parametrize("headers", [{"b3": "1"}, {"b3": "d"}, {"X-B3-Flags": "1"}], ids=["accept", "d", "flags"])
def test_a_b3_accept_without_ids_is_followed_by_a_sampler_that_would_drop(headers: dict[str, str]) -> None:
    dropping = service("always_off")
    try:
        assert dropping.serve(headers).get_span_context().trace_flags.sampled
    finally:
        dropping.provider.shutdown()


# --- 3: B3 defer ------------------------------------------------------------------------------------


def deferred_multi(trace_id: str) -> dict[str, str]:
    return {"X-B3-TraceId": trace_id, "X-B3-SpanId": CALLER}


def deferred_single(trace_id: str) -> dict[str, str]:
    return {"b3": f"{trace_id}-{CALLER}"}


@pytest.mark.parametrize("headers", [deferred_multi, deferred_single], ids=["multi", "single"])
@pytest.mark.parametrize(("sampler", "sampled"), [("always_on", True), ("always_off", False)])
def test_a_deferred_b3_decision_is_the_local_samplers_for_the_callers_trace(
    headers: object, sampler: str, sampled: bool
) -> None:
    local = service(sampler)
    try:
        span = local.serve(headers(TRACE_128))  # type: ignore[operator]
    finally:
        local.provider.shutdown()
    assert span.get_span_context().trace_flags.sampled is sampled
    assert format_trace_id(span.get_span_context().trace_id) == TRACE_128
    if sampled:  # an unsampled span is a NonRecordingSpan, which keeps no parent
        assert span.parent is not None
        assert format_span_id(span.parent.span_id) == CALLER


def test_a_deferred_trace_sampled_here_is_sent_on_as_sampled(shop: Service) -> None:
    client, sent = shop.call(deferred_multi(TRACE_128))
    assert shop.stored() == ["GET downstream", "GET /"]
    assert sent["x-b3-sampled"] == "1"
    assert sent["traceparent"] == f"00-{TRACE_128}-{format_span_id(client.get_span_context().span_id)}-01"


def test_the_ratio_sampler_decides_a_deferred_trace_by_its_id() -> None:
    # TraceIdRatioBased keeps ids whose low 64 bits are below ratio * 2**64.
    halves = service("ratio", ratio=0.5)
    try:
        kept = halves.serve(deferred_multi("0" * 16 + "1" * 16))
        dropped = halves.serve(deferred_multi("0" * 16 + "f" * 16))
    finally:
        halves.provider.shutdown()
    assert kept.get_span_context().trace_flags.sampled
    assert not dropped.get_span_context().trace_flags.sampled


def test_a_b3_deny_with_ids_is_still_followed(shop: Service) -> None:
    span = shop.serve({"X-B3-TraceId": TRACE_128, "X-B3-SpanId": CALLER, "X-B3-Sampled": "0"})
    assert not span.get_span_context().trace_flags.sampled


# --- 4: every format read, only the chosen ones injected -----------------------------------------------


@pytest.mark.parametrize(
    ("propagators", "headers"),
    [
        (("b3",), {"traceparent": f"00-{TRACE_128}-{CALLER}-01"}),
        (("b3multi",), {"traceparent": f"00-{TRACE_128}-{CALLER}-01"}),
        (("tracecontext",), {"X-B3-TraceId": TRACE_128, "X-B3-SpanId": CALLER, "X-B3-Sampled": "1"}),
        (("tracecontext",), {"b3": f"{TRACE_128}-{CALLER}-1"}),
        (("baggage",), {"b3": f"{TRACE_128}-{CALLER}-1"}),
    ],
)
def test_every_format_is_read_whatever_is_injected(propagators: tuple[str, ...], headers: dict[str, str]) -> None:
    extracted = build_propagator(propagators).extract(headers, getter=HEADER_GETTER)
    parent = trace.get_current_span(extracted).get_span_context()
    assert (format_trace_id(parent.trace_id), format_span_id(parent.span_id)) == (TRACE_128, CALLER)


def test_baggage_is_read_whatever_is_injected() -> None:
    extracted = build_propagator(["b3"]).extract({"baggage": "tenant=acme"}, getter=HEADER_GETTER)
    assert baggage.get_all(extracted) == {"tenant": "acme"}


@pytest.mark.parametrize(
    ("chosen", "winner"),
    [
        (["tracecontext", "baggage", "b3multi"], TRACE_128),  # the default: W3C first
        (["b3"], OTHER_TRACE),  # the chosen format first: a stale traceparent (a proxy's) does not win
        (["b3multi", "tracecontext"], OTHER_TRACE),
        (["baggage"], TRACE_128),  # no trace format chosen: W3C, then B3
    ],
)
def test_the_chosen_formats_are_read_first_then_w3c_then_b3(chosen: list[str], winner: str) -> None:
    headers = {"traceparent": f"00-{TRACE_128}-{CALLER}-01", "b3": f"{OTHER_TRACE}-{OTHER_SPAN}-1"}
    extracted = build_propagator(chosen).extract(headers, getter=HEADER_GETTER)
    assert format_trace_id(trace.get_current_span(extracted).get_span_context().trace_id) == winner


def test_only_the_chosen_formats_are_injected() -> None:
    single = service(propagators=("b3",))
    try:
        _, sent = single.call({"traceparent": f"00-{TRACE_128}-{CALLER}-01"})
    finally:
        single.provider.shutdown()
    assert set(sent) == {"b3"}


# --- 5: X-B3-ParentSpanId and debug ---------------------------------------------------------------------


def test_b3_multi_sends_the_calls_span_and_its_parent(shop: Service) -> None:
    client, sent = shop.call({"traceparent": f"00-{TRACE_128}-{CALLER}-01"})
    assert client.parent is not None
    assert sent["x-b3-spanid"] == format_span_id(client.get_span_context().span_id)
    assert sent["x-b3-parentspanid"] == format_span_id(client.parent.span_id)


def test_b3_single_sends_the_parent_last() -> None:
    single = service(propagators=("b3",))
    try:
        client, sent = single.call({})
    finally:
        single.provider.shutdown()
    assert client.parent is not None
    ids = (format_trace_id(client.context.trace_id), format_span_id(client.context.span_id))
    assert sent["b3"] == f"{ids[0]}-{ids[1]}-1-{format_span_id(client.parent.span_id)}"


@pytest.mark.parametrize(
    "headers",
    [
        {"X-B3-TraceId": TRACE_128, "X-B3-SpanId": CALLER, "X-B3-Flags": "1"},
        {"X-B3-TraceId": TRACE_128, "X-B3-SpanId": CALLER, "X-B3-Sampled": "1", "X-B3-Flags": "1"},
        {"b3": f"{TRACE_128}-{CALLER}-d"},
    ],
    ids=["flags", "flags-and-sampled", "single-d"],
)
def test_debug_is_sent_on_as_debug(headers: dict[str, str]) -> None:
    both = service(propagators=("b3multi", "b3"))
    try:
        client, sent = both.call(headers)
    finally:
        both.provider.shutdown()
    assert client.get_span_context().trace_flags.sampled
    assert sent["x-b3-flags"] == "1"
    assert "x-b3-sampled" not in sent  # debug implies sampled: B3 sends one or the other
    assert sent["b3"].split("-")[2] == "d"


def test_debug_does_not_leak_into_another_trace(shop: Service) -> None:
    extracted = build_propagator(DEFAULT_PROPAGATORS).extract({"b3": f"{TRACE_128}-{CALLER}-d"})
    new_trace = shop.provider.get_tracer("test").start_span("job", Context())  # started anew inside the request
    new_trace.end()
    sent: dict[str, str] = {}
    build_propagator(DEFAULT_PROPAGATORS).inject(sent, context=trace.set_span_in_context(new_trace, extracted))
    assert sent["x-b3-sampled"] == "1"
    assert "x-b3-flags" not in sent


# --- 6: 64-bit trace ids ------------------------------------------------------------------------------


def test_a_64_bit_trace_id_is_sent_on_in_16_characters_in_b3_and_32_in_w3c(shop: Service) -> None:
    _, sent = shop.call({"X-B3-TraceId": TRACE_64, "X-B3-SpanId": CALLER, "X-B3-Sampled": "1"})
    assert sent["x-b3-traceid"] == TRACE_64
    assert sent["traceparent"].split("-")[1] == TRACE_64.rjust(32, "0")


def test_a_64_bit_trace_id_is_logged_in_16_characters(shop: Service) -> None:
    span = shop.serve({"X-B3-TraceId": TRACE_64, "X-B3-SpanId": CALLER, "X-B3-Sampled": "1"})
    with trace.use_span(span):
        fields = correlation_fields("shop")
    assert fields["trace_id"] == TRACE_64


def test_a_128_bit_trace_id_is_logged_and_sent_in_32_characters(shop: Service) -> None:
    span = shop.serve({"traceparent": f"00-{TRACE_128}-{CALLER}-01"})
    with trace.use_span(span):
        assert correlation_fields("shop")["trace_id"] == TRACE_128
        sent: dict[str, str] = {}
        build_propagator(["b3multi"]).inject(sent)
    assert sent["x-b3-traceid"] == TRACE_128
