"""What a breaker tells the current span: its name, the call's outcome, the state; transitions as events.
A call the breaker ended or never made (a timeout, a short circuit, a rejection) becomes a span of its
own, an error, and a fallback runs in a span of its own: without them a timed-out call left a cancelled
client span with no status, and a short circuit nothing at all. Neither costs a successful call anything.

Instrumentation must never break the service: anything that fails here is swallowed.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Callable, Iterator

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.trace import Status, StatusCode

from tracehouse.instrumentation.breakers.breaker import State, Transition
from tracehouse.instrumentation.breakers.window import Outcome

__all__ = ["annotate", "fallback_span", "record_refusal", "record_transition"]

NAME = "tracehouse.breaker.name"
OUTCOME = "tracehouse.breaker.outcome"
STATE = "tracehouse.breaker.state"

_OUTCOME_KEYS = [outcome.key for outcome in Outcome]


def _context_getter() -> Callable[[], Context]:
    """``opentelemetry.context.get_current``, or the ``get`` of the ContextVar it reads when OTel keeps
    the context in one (its default): the same answer without two Python calls."""
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    variable = getattr(runtime, "_current_context", None)
    if type(runtime) is ContextVarsRuntimeContext and isinstance(variable, contextvars.ContextVar):
        return variable.get
    return otel_context.get_current


_get_context = _context_getter()
# The last context seen and its span (None: a NonRecordingSpan, which never records). A Context is
# immutable, so the same context object means the same span: a call in an unchanged context skips
# OTel's lookup. Replaced whole, never mutated, so threads may race on it harmlessly.
_last: tuple[object, trace.Span | None] = (object(), None)


def annotate(name: str, outcome: Outcome, state: State) -> None:
    """Set breaker name, outcome and state on the current span, if it records."""
    global _last
    context = _get_context()
    last = _last
    if last[0] is context:
        span = last[1]
    else:
        span = trace.get_current_span(context)
        if type(span) is trace.NonRecordingSpan:
            span = None
        _last = (context, span)
    if span is None or not span.is_recording():
        return
    with contextlib.suppress(Exception):  # instrumentation never raises into the service
        span.set_attributes({NAME: name, OUTCOME: _OUTCOME_KEYS[outcome], STATE: state._value_})


_tracer = trace.get_tracer("tracehouse.instrumentation.breakers")


def record_refusal(name: str, outcome: Outcome, state: State, seconds: float, message: str) -> None:
    """A span named after the breaker, child of the current one, for a call it timed out after
    ``seconds`` or refused at once (0): status Error, the outcome and its message."""
    with contextlib.suppress(Exception):
        end = time.time_ns()
        attributes = {NAME: name, OUTCOME: _OUTCOME_KEYS[outcome], STATE: state._value_}
        span = _tracer.start_span(name, start_time=end - int(seconds * 1e9), attributes=attributes)
        span.set_status(Status(StatusCode.ERROR, f"{_OUTCOME_KEYS[outcome]}: {message}"))
        span.end(end)


@contextlib.contextmanager
def fallback_span(name: str) -> Iterator[None]:
    """The fallback of breaker ``name`` runs in a span of its own (an error if the fallback fails).
    The fallback runs whatever the tracing does: a span that cannot start or end is left out."""
    span: contextlib.AbstractContextManager[object] | None = None
    with contextlib.suppress(Exception):  # the span starts on entering, not on creating, the manager
        manager = _tracer.start_as_current_span(f"{name} fallback", attributes={NAME: name})
        manager.__enter__()
        span = manager
    try:
        yield
    except BaseException as exc:
        if span is not None:
            with contextlib.suppress(Exception):
                span.__exit__(type(exc), exc, exc.__traceback__)
        raise
    if span is not None:
        with contextlib.suppress(Exception):
            span.__exit__(None, None, None)


def record_transition(transition: Transition) -> None:
    """A state change becomes an event on the span of the call that caused it."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    with contextlib.suppress(Exception):
        span.add_event(
            "breaker.state_change",
            {
                NAME: transition.breaker,
                "tracehouse.breaker.from": transition.from_state.value,
                "tracehouse.breaker.to": transition.to_state.value,
                "tracehouse.breaker.reason": transition.reason,
            },
        )
