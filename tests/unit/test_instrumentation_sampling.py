"""Unit tests of the rate-limiting sampler, on the real OpenTelemetry SDK with an injected clock.

No test sleeps or measures time: the clock is a number the test moves.
"""

from __future__ import annotations

import threading
from importlib.metadata import entry_points

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

from tracehouse.instrumentation.sampling import RateLimitingSampler, parent_based_rate_limiting

TRACE_ID = 0x463AC35C9F6413AD48485A3953BB6124
SPAN_ID = 0x0020000000000001


class Clock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def sampled(sampler: Sampler, parent: Context | None = None) -> bool:
    return sampler.should_sample(parent, TRACE_ID, "GET /orders").decision is Decision.RECORD_AND_SAMPLE


def count_sampled(sampler: Sampler, attempts: int, parent: Context | None = None) -> int:
    return sum(sampled(sampler, parent) for _ in range(attempts))


def parent(flags: int, *, remote: bool = True) -> Context:
    span_context = SpanContext(TRACE_ID, SPAN_ID, is_remote=remote, trace_flags=TraceFlags(flags))
    return trace.set_span_in_context(NonRecordingSpan(span_context))


def test_exactly_rate_traces_sampled_in_each_second() -> None:
    clock = Clock()
    sampler = RateLimitingSampler(10, clock)
    for _ in range(5):
        assert count_sampled(sampler, 100) == 10
        clock.now += 1.0


def test_tokens_accrue_with_time_and_are_capped_at_one_second() -> None:
    clock = Clock()
    sampler = RateLimitingSampler(10, clock)
    assert count_sampled(sampler, 100) == 10
    clock.now += 0.5
    assert count_sampled(sampler, 100) == 5
    clock.now += 3600.0  # a quiet hour earns no bigger burst than one second's worth
    assert count_sampled(sampler, 100) == 10


def test_rate_below_one_per_second() -> None:
    clock = Clock()
    sampler = RateLimitingSampler(0.5, clock)
    assert count_sampled(sampler, 10) == 1
    clock.now += 1.0
    assert count_sampled(sampler, 10) == 0
    clock.now += 1.0
    assert count_sampled(sampler, 10) == 1


def test_rate_zero_samples_no_new_trace() -> None:
    clock = Clock()
    sampler = RateLimitingSampler(0, clock)
    assert count_sampled(sampler, 10) == 0
    clock.now += 60.0
    assert count_sampled(sampler, 10) == 0


def test_a_clock_going_back_earns_nothing() -> None:
    clock = Clock()
    sampler = RateLimitingSampler(2, clock)
    assert count_sampled(sampler, 10) == 2
    clock.now -= 100.0
    assert count_sampled(sampler, 10) == 0
    clock.now += 1.0
    assert count_sampled(sampler, 10) == 2


def test_concurrent_decisions_never_exceed_the_budget() -> None:
    sampler = RateLimitingSampler(50, Clock())
    counts: list[int] = []
    start = threading.Barrier(8)

    def decide() -> None:
        start.wait()
        counts.append(count_sampled(sampler, 500))

    threads = [threading.Thread(target=decide) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counts) == 50


def test_result_keeps_attributes_only_when_sampled() -> None:
    sampler = RateLimitingSampler(1, Clock())
    kept = sampler.should_sample(None, TRACE_ID, "op", attributes={"http.method": "GET"})
    dropped = sampler.should_sample(None, TRACE_ID, "op", attributes={"http.method": "GET"})
    assert (kept.decision, dict(kept.attributes or {})) == (Decision.RECORD_AND_SAMPLE, {"http.method": "GET"})
    assert (dropped.decision, dropped.attributes) == (Decision.DROP, {})


def test_a_sampled_parent_is_followed_over_the_limit() -> None:
    sampler = ParentBased(RateLimitingSampler(1, Clock()))
    assert count_sampled(sampler, 10) == 1  # budget spent
    assert count_sampled(sampler, 10, parent(1, remote=True)) == 10
    assert count_sampled(sampler, 10, parent(1, remote=False)) == 10


def test_an_unsampled_parent_is_not_sampled_and_spends_nothing() -> None:
    sampler = ParentBased(RateLimitingSampler(3, Clock()))
    assert count_sampled(sampler, 10, parent(0, remote=True)) == 0
    assert count_sampled(sampler, 10, parent(0, remote=False)) == 0
    assert count_sampled(sampler, 10) == 3  # the whole budget is still there for new traces


def test_a_sampled_child_keeps_the_parent_trace_state() -> None:
    span_context = SpanContext(
        TRACE_ID, SPAN_ID, is_remote=True, trace_flags=TraceFlags(1), trace_state=TraceState([("vendor", "v1")])
    )
    context = trace.set_span_in_context(NonRecordingSpan(span_context))
    result = ParentBased(RateLimitingSampler(0, Clock())).should_sample(context, TRACE_ID, "op")
    assert result.decision is Decision.RECORD_AND_SAMPLE
    assert result.trace_state is not None
    assert result.trace_state.get("vendor") == "v1"


def test_spans_of_a_real_provider() -> None:
    provider = TracerProvider(sampler=ParentBased(RateLimitingSampler(2, Clock())))
    tracer = provider.get_tracer("test")
    roots = []
    for _ in range(5):
        with tracer.start_as_current_span("root") as root, tracer.start_as_current_span("child") as child:
            roots.append(root.get_span_context().trace_flags.sampled)
            # The child follows its root either way, and has ids even when not sampled.
            assert child.get_span_context().trace_flags.sampled == roots[-1]
            assert child.get_span_context().is_valid
    assert roots == [True, True, False, False, False]
    provider.shutdown()


@pytest.mark.parametrize(("rate", "text"), [(10, "10"), (2.5, "2.5"), (0.25, "0.25"), (0, "0")])
def test_description(rate: float, text: str) -> None:
    sampler = RateLimitingSampler(rate, Clock())
    assert sampler.get_description() == f"RateLimitingSampler{{{text}/s}}"
    assert sampler.rate == rate


@pytest.mark.parametrize("rate", [-1.0, float("nan"), float("inf")])
def test_rejects_a_bad_rate(rate: float) -> None:
    with pytest.raises(ValueError, match="traces per second"):
        RateLimitingSampler(rate)


@pytest.mark.parametrize(("arg", "rate"), [(None, "10"), ("", "10"), (" 5 ", "5"), ("0.5", "0.5"), (3.0, "3")])
def test_entry_point_factory(arg: str | float | None, rate: str) -> None:
    description = parent_based_rate_limiting(arg).get_description()
    assert description.startswith(f"ParentBased{{root:RateLimitingSampler{{{rate}/s}},")


def test_entry_point_factory_rejects_a_bad_argument() -> None:
    with pytest.raises(ValueError, match="could not convert"):
        parent_based_rate_limiting("fast")


def test_registered_entry_point_is_the_factory() -> None:
    found = list(entry_points(group="opentelemetry_traces_sampler", name="parentbased_ratelimit"))
    assert found, "pyproject.toml registers parentbased_ratelimit under opentelemetry_traces_sampler"
    assert found[0].load() is parent_based_rate_limiting
