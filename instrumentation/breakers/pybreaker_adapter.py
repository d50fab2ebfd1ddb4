"""Tracehouse stats for pybreaker: a listener that counts every call of a ``pybreaker.CircuitBreaker``
(outcome, latency, concurrency) and mirrors its state into a registered breaker, which the reporter
ships and ``/hystrix.stream`` shows like any Tracehouse breaker.

pybreaker decides, this only records: the mirrored breaker never refuses a call nor changes state
on its own. A listener hook runs inside pybreaker's call, so it must never raise into it: its errors
are logged and swallowed. pybreaker is not a dependency of tracehouse; this module alone needs it.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

try:
    import pybreaker
except ImportError as missing:
    raise ImportError(
        "tracehouse.instrumentation.breakers.pybreaker_adapter needs pybreaker, which tracehouse does not "
        "install: pip install pybreaker"
    ) from missing

from tracehouse.instrumentation.breakers.breaker import Admission, BreakerCore, State, Transition
from tracehouse.instrumentation.breakers.config import BreakerConfig
from tracehouse.instrumentation.breakers.registry import REGISTRY, Registry
from tracehouse.instrumentation.breakers.tracing import annotate, record_transition
from tracehouse.instrumentation.breakers.window import Outcome

__all__ = ["TracehouseListener"]

_log = logging.getLogger("tracehouse.breakers")

#: pybreaker's state names (``pybreaker.STATE_*``) and the states they mirror to.
_STATES = {
    pybreaker.STATE_CLOSED: State.CLOSED,
    pybreaker.STATE_OPEN: State.OPEN,
    pybreaker.STATE_HALF_OPEN: State.HALF_OPEN,
}
_LET_IN = Admission()


class _MirroredCore(BreakerCore):
    """A breaker core that records what pybreaker decided: it lets every call in, never judges the
    health itself, and is in whatever state pybreaker last announced."""

    @property
    def state(self) -> State:
        return self._state  # pybreaker's word: an open pybreaker stays open until a call moves it

    def mirror(self, state: State) -> None:
        self._set(state, "pybreaker")

    def _permission(self, now: float) -> Admission:
        return _LET_IN

    def _judge(self, trial: bool, outcome: Outcome, latency_ms: float | None) -> Transition | None:
        return None


#: A call pybreaker let in, until its success or failure is heard: its breaker, admission, start.
_Running = tuple[BreakerCore, Admission, float]


@dataclass(slots=True)
class _Attempt:
    """A call through an attached breaker's ``call``; ``admitted`` once pybreaker let it in."""

    breaker: pybreaker.CircuitBreaker
    admitted: bool = False


class _Calls(threading.local):
    """This thread's calls in progress, innermost last."""

    def __init__(self) -> None:
        self.running: list[_Running] = []
        self.attempts: list[_Attempt] = []


class TracehouseListener(pybreaker.CircuitBreakerListener):
    """Records pybreaker calls into a Tracehouse breaker registered in ``registry`` (the reporter's).

    ``name``: the Tracehouse breaker's name; by default each pybreaker's own ``name`` (one Tracehouse
    breaker per pybreaker), else ``"pybreaker"``. ``group``: as :class:`BreakerConfig`'s (default: the
    name up to its first dot).

    Use ``listener.attach(breaker)`` (or pass it in ``listeners=[...]`` and call ``attach`` too):
    pybreaker tells no listener about the calls it refuses while open, so ``attach`` also wraps the
    breaker's ``call`` to count those as short-circuited. As a plain listener it records every call
    pybreaker lets in — successes and failures with their latency (pybreaker counts an excluded
    exception as a success, and so does this) — and every state change, but no refusal.
    A generator function's call is counted when its generator finishes, on the thread that ran it.
    """

    def __init__(self, name: str | None = None, group: str | None = None, *, registry: Registry = REGISTRY) -> None:
        self.name = name
        self.group = group
        self.registry = registry
        self._cores: dict[str, _MirroredCore] = {}
        self._by_breaker: dict[pybreaker.CircuitBreaker, _MirroredCore] = {}
        self._lock = threading.Lock()
        self._calls = _Calls()

    def core(self, breaker: pybreaker.CircuitBreaker) -> BreakerCore:
        """The Tracehouse breaker that records ``breaker`` (created and registered the first time)."""
        return self._core(breaker)

    def _core(self, breaker: pybreaker.CircuitBreaker) -> _MirroredCore:
        found = self._by_breaker.get(breaker)
        if found is None:
            name = self.name or breaker.name or "pybreaker"
            with self._lock:
                found = self._cores.get(name)
                if found is None:
                    found = self._cores[name] = self._create(name, breaker)
                self._by_breaker[breaker] = found
        return found

    def _create(self, name: str, breaker: pybreaker.CircuitBreaker) -> _MirroredCore:
        try:  # pybreaker's settings where they mean the same, for the reported properties
            config = BreakerConfig(
                group=self.group,
                wait_in_open=float(breaker.reset_timeout),
                half_open_calls=int(getattr(breaker, "success_threshold", 1)),
            ).validate()
        except (TypeError, ValueError):
            config = BreakerConfig(group=self.group)
        core = _MirroredCore(name, config)
        core.add_listener(record_transition)
        state = _STATES.get(breaker.current_state)
        if state is not None:
            core.mirror(state)
        self.registry.add(core)
        return core

    def attach(self, breaker: pybreaker.CircuitBreaker) -> pybreaker.CircuitBreaker:
        """Listen to ``breaker`` and count the calls it refuses while open; returns ``breaker``.

        Wraps the instance's ``call``, which pybreaker's decorator and ``calling()`` go through too.
        Attaching twice changes nothing. The Tracehouse breaker is registered at once, so it is
        reported before its first call.
        """
        if self not in breaker.listeners:
            breaker.add_listener(self)
        self._core(breaker)
        if getattr(breaker.call, "_tracehouse_listener", None) is not self:
            breaker.call = self._counting_refusals(breaker, breaker.call)  # type: ignore[method-assign]
        return breaker

    def _counting_refusals(self, breaker: pybreaker.CircuitBreaker, call: Callable[..., Any]) -> Callable[..., Any]:
        calls = self._calls

        @functools.wraps(call)
        def counted(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            attempt = _Attempt(breaker)
            ongoing = calls.attempts
            ongoing.append(attempt)
            try:
                return call(func, *args, **kwargs)
            except pybreaker.CircuitBreakerError:
                if not attempt.admitted:  # refused before any listener heard of it
                    self._refused(breaker)
                raise
            finally:
                ongoing.pop()

        counted._tracehouse_listener = self  # type: ignore[attr-defined]
        return counted

    # -- pybreaker's hooks: each runs inside pybreaker's call and must never raise into it -----------

    def before_call(self, cb: pybreaker.CircuitBreaker, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        try:
            core = self._core(cb)
            admission = core.admit(pool=False)
            calls = self._calls
            calls.running.append((core, admission, perf_counter()))
            for attempt in calls.attempts:
                if attempt.breaker is cb:
                    attempt.admitted = True  # also the outer attempt when pybreaker re-calls as half-open
        except Exception:
            _log.exception("tracehouse: the pybreaker listener failed before a call of %s", cb.name)

    def success(self, cb: pybreaker.CircuitBreaker) -> None:
        self._finish(cb, Outcome.SUCCESS)

    def failure(self, cb: pybreaker.CircuitBreaker, exc: BaseException) -> None:
        self._finish(cb, Outcome.FAILURE)

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        try:
            state = _STATES.get(new_state.name)
            if state is None:
                _log.warning("tracehouse: pybreaker %s is in an unknown state %r", cb.name, new_state.name)
                return
            self._core(cb).mirror(state)
        except Exception:
            _log.exception("tracehouse: the pybreaker listener failed on a state change of %s", cb.name)

    # -- bookkeeping ----------------------------------------------------------------------------

    def _finish(self, cb: pybreaker.CircuitBreaker, outcome: Outcome) -> None:
        try:
            core = self._core(cb)
            call = _innermost(self._calls.running, core)
            if call is None:  # began on another thread (a generator handed over): no latency, no slot to give
                core.count(outcome)
            else:
                core.complete(call[1], outcome, (perf_counter() - call[2]) * 1000.0)
            annotate(core.name, outcome, core.state)
        except Exception:
            _log.exception("tracehouse: the pybreaker listener failed after a call of %s", cb.name)

    def _refused(self, cb: pybreaker.CircuitBreaker) -> None:
        try:
            core = self._core(cb)
            core.count(Outcome.SHORT_CIRCUITED)
            annotate(core.name, Outcome.SHORT_CIRCUITED, core.state)
        except Exception:
            _log.exception("tracehouse: the pybreaker listener failed on a refused call of %s", cb.name)


def _innermost(running: list[_Running], core: BreakerCore) -> _Running | None:
    """Take the innermost running call of ``core`` off this thread's list: the last one, but for generators."""
    if running and running[-1][0] is core:
        return running.pop()
    for i in range(len(running) - 2, -1, -1):
        if running[i][0] is core:
            return running.pop(i)
    return None
