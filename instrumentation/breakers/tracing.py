"""What a breaker tells the current span: its name, the call's outcome, the state; transitions as events.

Instrumentation must never break the service: anything that fails here is swallowed.
"""

from __future__ import annotations

import contextlib

from opentelemetry import trace

from tracehouse.instrumentation.breakers.breaker import State, Transition
from tracehouse.instrumentation.breakers.window import Outcome

__all__ = ["annotate", "record_transition"]

NAME = "tracehouse.breaker.name"
OUTCOME = "tracehouse.breaker.outcome"
STATE = "tracehouse.breaker.state"


def annotate(name: str, outcome: Outcome, state: State) -> None:
    """Set breaker name, outcome and state on the current span, if it records."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    with contextlib.suppress(Exception):  # instrumentation never raises into the service
        span.set_attributes({NAME: name, OUTCOME: outcome.key, STATE: state.value})


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
