"""The circuit breaker's state machine and its bookkeeping: who may call, and what each call did.

Every decision and every count happens under one lock per breaker, twice per call (admit,
complete), so the breaker is thread-safe and cheap. Running the call (sync, async, timeout,
fallback) is :mod:`tracehouse.instrumentation.breakers.execution`'s business, not this module's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from tracehouse.instrumentation.breakers import clock
from tracehouse.instrumentation.breakers.bulkhead import SemaphoreBulkhead, ThreadPoolBulkhead
from tracehouse.instrumentation.breakers.config import BreakerConfig
from tracehouse.instrumentation.breakers.window import HEALTH_ERRORS, HEALTH_REQUESTS, Bucket, Outcome, RollingWindow

__all__ = ["Admission", "BreakerCore", "State", "Transition"]

_log = logging.getLogger("tracehouse.breakers")


class State(Enum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"
    FORCED_OPEN = "FORCED_OPEN"
    FORCED_CLOSED = "FORCED_CLOSED"
    DISABLED = "DISABLED"
    METRICS_ONLY = "METRICS_ONLY"


#: States in which every call is let through whatever the health.
_ALWAYS_PERMIT = frozenset({State.CLOSED, State.FORCED_CLOSED, State.DISABLED, State.METRICS_ONLY})
# Enum members as module globals: ``State.CLOSED`` costs ~65 ns on Python 3.11, a global ~5 ns.
_CLOSED, _HALF_OPEN = State.CLOSED, State.HALF_OPEN


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of state, with the health that caused it."""

    breaker: str
    from_state: State
    to_state: State
    reason: str


@dataclass(frozen=True, slots=True)
class Admission:
    """The answer to "may I call?": ``refused`` is the outcome to count when the answer is no."""

    refused: Outcome | None = None
    trial: bool = False


_PERMIT = Admission()
_TRIAL = Admission(trial=True)
_SHORT_CIRCUIT = Admission(refused=Outcome.SHORT_CIRCUITED)
_SEMAPHORE_FULL = Admission(refused=Outcome.SEMAPHORE_REJECTED)
_POOL_FULL = Admission(refused=Outcome.THREAD_POOL_REJECTED)

Listener = Callable[[Transition], None]


class BreakerCore:
    """Name, settings, state, rolling window and isolation of one breaker."""

    def __init__(
        self,
        name: str,
        config: BreakerConfig,
        bulkhead: SemaphoreBulkhead | None = None,
        thread_pool: ThreadPoolBulkhead | None = None,
    ) -> None:
        if not name or len(name) > 200:
            raise ValueError("a breaker name is 1–200 characters")
        self.name = name
        self.config = config.validate()
        self.group = config.group or name.split(".", 1)[0]
        self.bulkhead = bulkhead
        self.thread_pool = thread_pool
        self.window = RollingWindow(config.window, config.slow_call_ms)
        self._lock = threading.Lock()
        self._state = State.CLOSED
        self._fast = bulkhead is None and thread_pool is None  # closed without isolation; kept by _move
        self._open_until = 0.0
        self._trials_issued = 0
        self._trial_calls = self._trial_errors = self._trial_slow = 0
        self._concurrency = 0
        self._listeners: list[Listener] = []
        self._pending: Transition | None = None
        #: The first second this breaker existed in: the reporter ships nothing older.
        self.created_second = int(clock.wall())

    # -- state -----------------------------------------------------------------------------

    @property
    def state(self) -> State:
        with self._lock:
            if self._state is State.OPEN and clock.wall() >= self._open_until:
                return State.HALF_OPEN  # what the next call will find
            return self._state

    @property
    def concurrency(self) -> int:
        return self._concurrency

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` on every state change (outside the breaker's lock; errors are logged)."""
        self._listeners.append(listener)

    def force_open(self) -> None:
        self._set(State.FORCED_OPEN, "forced open")

    def force_closed(self) -> None:
        self._set(State.FORCED_CLOSED, "forced closed")

    def disable(self) -> None:
        self._set(State.DISABLED, "disabled")

    def metrics_only(self) -> None:
        self._set(State.METRICS_ONLY, "metrics only")

    def reset(self) -> None:
        """Back to CLOSED with a clean health window (the counts still to report are kept)."""
        self._set(State.CLOSED, "reset")

    def _set(self, state: State, reason: str) -> None:
        with self._lock:
            transition = self._move(state, reason)
        self._announce(transition)

    def _move(self, state: State, reason: str) -> Transition | None:
        """Change state under the lock; the caller announces the transition after releasing it."""
        old = self._state
        if state is State.OPEN:
            self._open_until = clock.wall() + self.config.wait_in_open
        if state is State.HALF_OPEN:
            self._trials_issued = self._trial_calls = self._trial_errors = self._trial_slow = 0
        if state is State.CLOSED:
            self.window.reset_health()
        self._state = state
        self._fast = state is _CLOSED and self.bulkhead is None and self.thread_pool is None
        if old is state:
            return None
        return Transition(self.name, old, state, reason)

    def _announce(self, transition: Transition | None) -> None:
        if transition is None:
            return
        _log.log(
            # opening and recovering are what an operator watches for; a half-open trial is routine
            logging.INFO if transition.to_state is State.HALF_OPEN else logging.WARNING,
            "breaker %s: %s -> %s (%s)",
            transition.breaker,
            transition.from_state.value,
            transition.to_state.value,
            transition.reason,
        )
        for listener in list(self._listeners):
            try:
                listener(transition)
            except Exception:
                _log.exception("breaker %s: a state listener failed", self.name)

    # -- the two steps of every call ---------------------------------------------------------

    def admit(self, pool: bool = True) -> Admission:
        """Decide whether a call may run, and take its concurrency slot (and a pool place) if so."""
        now = clock.wall()
        lock = self._lock
        lock.acquire()  # not ``with``: acquire/release is ~90 ns cheaper a call on Python 3.11
        try:
            if self._fast:
                # The common case (closed, no bulkhead or pool): nothing to decide or isolate, one slot to take.
                concurrency = self._concurrency = self._concurrency + 1
                bucket = self.window.at(now)
                if concurrency > bucket.max_concurrency:
                    bucket.max_concurrency = concurrency
                return _PERMIT
        finally:
            lock.release()
        return self._admit(now, pool)

    def _admit(self, now: float, pool: bool) -> Admission:
        refusal = None
        with self._lock:
            self._pending = None
            permission = admission = self._permission(now)
            if admission.refused is None:
                admission = self._isolate(admission, pool)
            if admission.refused is not None:
                self.window.record(int(now), admission.refused)
                if admission.refused is not Outcome.SHORT_CIRCUITED:
                    # A rejection is an error of the dependency's health, as in Hystrix; a rejected
                    # trial is a failed trial (else its slot would be lost and HALF_OPEN never left).
                    refusal = self._judge(permission.trial, admission.refused, None)
            else:
                self._concurrency += 1
                bucket = self.window.bucket(int(now))
                if self._concurrency > bucket.max_concurrency:
                    bucket.max_concurrency = self._concurrency
            pending, self._pending = self._pending, None
        self._announce(pending)
        self._announce(refusal)
        return admission

    def _permission(self, now: float) -> Admission:
        state = self._state
        if state in _ALWAYS_PERMIT:
            return _PERMIT
        if state is State.OPEN:
            if now < self._open_until:
                return _SHORT_CIRCUIT
            self._pending = self._move(State.HALF_OPEN, "wait in open elapsed")
            state = State.HALF_OPEN
        if state is State.HALF_OPEN and self._trials_issued < self.config.half_open_calls:
            self._trials_issued += 1
            return _TRIAL
        return _SHORT_CIRCUIT

    def _isolate(self, admission: Admission, pool: bool) -> Admission:
        if self.bulkhead is not None and not self.bulkhead.try_acquire():
            return _SEMAPHORE_FULL
        if pool and self.thread_pool is not None and not self.thread_pool.try_reserve():
            if self.bulkhead is not None:
                self.bulkhead.release()
            return _POOL_FULL
        return admission

    def complete(self, admission: Admission, outcome: Outcome, latency_ms: float | None) -> Bucket:
        """Count a finished call (``admit`` let it run) and move the state if its health says so."""
        lock = self._lock
        lock.acquire()
        try:
            self._concurrency -= 1
            if self.bulkhead is not None:
                self.bulkhead.release()
            window = self.window
            bucket = window.record(clock.wall(), outcome, latency_ms)
            if self._state is _CLOSED and not window.errors and not window.slow:
                transition = None  # _judge's answer, without the call: nothing failed nor was slow
            else:
                transition = self._judge(admission.trial, outcome, latency_ms)
        finally:
            lock.release()
        if transition is not None:
            self._announce(transition)
        return bucket

    def count(self, outcome: Outcome) -> None:
        """Count an outcome that is not a call of its own (fallback results, exceptions thrown)."""
        with self._lock:
            self.window.record(int(clock.wall()), outcome)

    def observe(self, outcome: Outcome, latency_ms: float | None) -> None:
        """Count a call that ran without asking the breaker (seen afterwards, e.g. from its span)."""
        with self._lock:
            self.window.record(int(clock.wall()), outcome, latency_ms)
            transition = self._judge(False, outcome, latency_ms)
        self._announce(transition)

    def _judge(self, trial: bool, outcome: Outcome, latency_ms: float | None) -> Transition | None:
        state = self._state
        if state is _HALF_OPEN and trial:
            return self._judge_trial(outcome, latency_ms)
        if state is not _CLOSED:
            return None
        window, config = self.window, self.config
        if window.calls < config.minimum_calls:
            return None
        # ``errors and``, ``slow and``: the thresholds are > 0, so no failure (no slow call) never opens.
        if window.errors and window.errors * 100.0 >= config.failure_rate_threshold * window.calls:
            return self._move(State.OPEN, f"failure rate {_rate(window.errors, window.calls)} % of {window.calls}")
        if window.slow and window.slow * 100.0 >= config.slow_call_rate_threshold * window.calls:
            return self._move(State.OPEN, f"slow call rate {_rate(window.slow, window.calls)} % of {window.calls}")
        return None

    def _judge_trial(self, outcome: Outcome, latency_ms: float | None) -> Transition | None:
        if outcome not in HEALTH_REQUESTS:
            self._trials_issued -= 1  # ignored or bad request: the trial slot goes to another call
            return None
        self._trial_calls += 1
        self._trial_errors += outcome in HEALTH_ERRORS
        slow_ms = self.config.slow_call_ms
        self._trial_slow += slow_ms is not None and latency_ms is not None and latency_ms >= slow_ms
        if self._trial_calls < self.config.half_open_calls:
            return None
        calls, config = self._trial_calls, self.config
        if self._trial_errors * 100.0 >= config.failure_rate_threshold * calls:
            return self._move(State.OPEN, f"{self._trial_errors} of {calls} trial calls failed")
        if self._trial_slow * 100.0 >= config.slow_call_rate_threshold * calls:
            return self._move(State.OPEN, f"{self._trial_slow} of {calls} trial calls were slow")
        return self._move(State.CLOSED, f"{calls} trial calls succeeded")

    # -- reading -----------------------------------------------------------------------------

    def completed_buckets(self, after: int, running: bool = False) -> tuple[list[Bucket], int]:
        """Copies of the completed seconds after ``after`` (with ``running``, the running one last),
        and the oldest second still held."""
        with self._lock:
            return self.window.completed(after, int(clock.wall()), running), self.window.oldest_second

    def recent_buckets(self, seconds: int | None = None) -> list[Bucket]:
        """Copies of the buckets of the last ``seconds`` (default: the window), the running one included."""
        with self._lock:
            return self.window.recent(int(clock.wall()), seconds)

    def after_fork_in_child(self) -> None:
        """In a forked child: a new lock (the parent's may have been held by a thread that is gone)
        and counts of its own from now on — the parent reports what it counted before the fork."""
        self._lock = threading.Lock()
        self.window.forget_counts()
        self.created_second = int(clock.wall())
        # Calls in flight were the parent's threads' and do not end here: no concurrency, no
        # transition pending, and a half-open breaker's trial slots free again (a trial taken by a
        # parent thread would otherwise keep the child refusing calls for good).
        self._concurrency, self._pending = 0, None
        if self._state is State.HALF_OPEN:
            self._move(State.HALF_OPEN, "forked")
        if isinstance(self.bulkhead, SemaphoreBulkhead):
            self.bulkhead.after_fork_in_child()


def _rate(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}"
