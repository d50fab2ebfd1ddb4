"""The rate-limiting sampler OpenTelemetry Python does not ship: at most N new traces per second.

Spring Cloud Sleuth (Brave) and Jaeger sample this way by default, so a traffic spike costs the
collector a bounded number of traces instead of a multiple of them. It decides for new (root)
traces only; :func:`parent_based_rate_limiting` puts it under :class:`CallerBased`, so a caller's
decision is always followed. A decision never blocks and never raises into the traced code.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Decision, ParentBased, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from tracehouse.instrumentation.b3 import caller_decision, deferred_to_us
from tracehouse.instrumentation.config import DEFAULT_SAMPLER_RATE

__all__ = ["CallerBased", "RateLimitingSampler", "parent_based_rate_limiting"]


class RateLimitingSampler(Sampler):
    """Samples at most ``rate`` traces per second: a token bucket refilled at ``rate`` tokens a second.

    The bucket holds one second's worth (at least one token) and starts full, so after a quiet
    period up to ``rate`` traces are sampled at once; over any longer stretch the average stays
    at most ``rate`` per second. ``rate`` 0 samples nothing. Thread-safe; ``clock`` (seconds,
    never going back) is injectable for tests.
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not (math.isfinite(rate) and rate >= 0.0):
            raise ValueError(f"rate must be a number of traces per second >= 0, got {rate!r}")
        self._rate = rate
        self._capacity = max(rate, 1.0) if rate > 0.0 else 0.0
        self._tokens = self._capacity
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()

    @property
    def rate(self) -> float:
        """Traces per second."""
        return self._rate

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if self._take():
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, _parent_trace_state(parent_context))
        return SamplingResult(Decision.DROP, None, _parent_trace_state(parent_context))

    def get_description(self) -> str:
        return f"RateLimitingSampler{{{self._rate:g}/s}}"

    def _take(self) -> bool:
        """Spend a token if there is one, after adding those earned since the last call."""
        with self._lock:
            now = self._clock()
            earned = max(now - self._last, 0.0) * self._rate
            self._tokens = min(self._capacity, self._tokens + earned)
            self._last = now
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True


class CallerBased(ParentBased):
    """``ParentBased(root)`` that also follows the B3 states a ``SpanContext`` cannot hold
    (:mod:`tracehouse.instrumentation.b3`): a caller that sent ids but deferred the decision gets
    ``root``'s decision for its trace id, and a decision sent without ids (``b3: 0``) is followed
    by the trace that starts here. Otherwise exactly ``ParentBased``, description included.
    """

    def __init__(self, root: Sampler) -> None:
        super().__init__(root)
        self._deciding = root

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        sampler = self._for_caller(parent_context)
        if sampler is None:
            return super().should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)
        return sampler.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def _for_caller(self, parent_context: Context | None) -> Sampler | None:
        if deferred_to_us(parent_context):
            return self._deciding
        decision = caller_decision(parent_context)
        if decision is None:
            return None
        return ALWAYS_ON if decision else ALWAYS_OFF


def _parent_trace_state(parent_context: Context | None) -> TraceState | None:
    span_context = trace.get_current_span(parent_context).get_span_context()
    return span_context.trace_state if span_context.is_valid else None


def parent_based_rate_limiting(rate: float | str | None = None) -> Sampler:
    """``CallerBased(RateLimitingSampler(rate))``; ``rate`` may be text, as ``OTEL_TRACES_SAMPLER_ARG`` is.

    Also the factory of the ``opentelemetry_traces_sampler`` entry point ``parentbased_ratelimit``,
    so plain ``opentelemetry-instrument`` can use it. Raises ``ValueError`` for a bad rate.
    """
    if rate is None or (isinstance(rate, str) and not rate.strip()):
        rate = DEFAULT_SAMPLER_RATE
    return CallerBased(RateLimitingSampler(float(rate)))
