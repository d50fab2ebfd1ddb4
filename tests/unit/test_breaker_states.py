"""The breaker's state machine against an independent model, driven by hypothesis.

Rules make calls (success, failure, slow, ignored, bad request, bulkhead-rejected), move the clock
and force states; after every step the breaker's state, transitions, health and rolling counts
must equal the model's. Time is a number the test moves: nothing sleeps.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tests.unit.conftest import FakeClock, execution
from tracehouse.instrumentation.breakers import (
    BreakerConfig,
    BulkheadFull,
    CallNotPermitted,
    CircuitBreaker,
    Outcome,
    State,
    Transition,
    clock,
)

pytestmark = pytest.mark.usefixtures("clean_breakers")

FAST, SLOW = 0.01, 0.25  # seconds of call latency; slow_call_duration is 0.1 s when set
ALWAYS = {State.CLOSED, State.FORCED_CLOSED, State.DISABLED, State.METRICS_ONLY}
ERRORS = {Outcome.FAILURE, Outcome.TIMEOUT, Outcome.SEMAPHORE_REJECTED, Outcome.THREAD_POOL_REJECTED}
HEALTH = {Outcome.SUCCESS, *ERRORS}


class Failure(Exception):
    pass


class Ignored(Exception):
    pass


class BadRequest(Exception):
    pass


KINDS = {
    "success": (Outcome.SUCCESS, FAST),
    "slow_success": (Outcome.SUCCESS, SLOW),
    "failure": (Outcome.FAILURE, FAST),
    "slow_failure": (Outcome.FAILURE, SLOW),
    "ignored": (Outcome.IGNORED, FAST),
    "bad_request": (Outcome.BAD_REQUEST, FAST),
}
RAISES = {Outcome.FAILURE: Failure, Outcome.IGNORED: Ignored, Outcome.BAD_REQUEST: BadRequest}


@dataclass
class Model:
    """What the breaker should do, written from the documented rules, not from its code."""

    config: BreakerConfig
    fallback: bool
    state: State = State.CLOSED
    open_until: float = 0.0
    trials_issued: int = 0
    trials: list[tuple[bool, bool]] = field(default_factory=list)  # (error, slow) of finished trials
    health: list[tuple[int, bool, bool]] = field(default_factory=list)  # (second, error, slow) since closing
    counts: list[tuple[int, Outcome]] = field(default_factory=list)
    transitions: list[tuple[State, State]] = field(default_factory=list)

    def shown_state(self, now: float) -> State:
        if self.state is State.OPEN and now >= self.open_until:
            return State.HALF_OPEN
        return self.state

    def move(self, state: State, now: float) -> None:
        if state is State.OPEN:
            self.open_until = now + self.config.wait_in_open
        if state is State.HALF_OPEN:
            self.trials_issued, self.trials = 0, []
        if state is State.CLOSED:
            self.health = []
        if state is not self.state:
            self.transitions.append((self.state, state))
        self.state = state

    def attempt(self, outcome: Outcome, latency: float, now: float) -> Any:
        """One call; returns the result the caller should see, or the exception type it should get."""
        second = int(now)
        trial = False
        if self.state is State.OPEN and now >= self.open_until:
            self.move(State.HALF_OPEN, now)
        if self.state is State.HALF_OPEN and self.trials_issued < self.config.half_open_calls:
            self.trials_issued += 1
            trial = True
        elif self.state not in ALWAYS:
            return self.refused(second, Outcome.SHORT_CIRCUITED, CallNotPermitted)
        if outcome is Outcome.SEMAPHORE_REJECTED:
            answer = self.refused(second, outcome, BulkheadFull)
            self.judge(trial, outcome, False, now)
            return answer
        slow = self.config.slow_call_duration is not None and latency >= self.config.slow_call_duration
        self.counts.append((second, outcome))
        if slow and outcome in HEALTH:
            self.counts.append((second, Outcome.SLOW))
        if outcome in HEALTH:
            self.health.append((second, outcome in ERRORS, slow))
        answer = self.fall_back(second, outcome) if outcome is Outcome.FAILURE else RAISES.get(outcome, "ok")
        if outcome is Outcome.BAD_REQUEST:
            self.counts.append((second, Outcome.EXCEPTION_THROWN))
        self.judge(trial, outcome, slow, now)
        return answer

    def refused(self, second: int, outcome: Outcome, error: type[Exception]) -> Any:
        self.counts.append((second, outcome))
        if outcome is Outcome.SEMAPHORE_REJECTED:
            self.health.append((second, True, False))
        answer = self.fall_back(second, outcome)
        return error if answer is Failure else answer

    def fall_back(self, second: int, outcome: Outcome) -> Any:
        if self.fallback:
            self.counts.append((second, Outcome.FALLBACK_SUCCESS))
            return "fallback"
        self.counts += [(second, Outcome.FALLBACK_MISSING), (second, Outcome.EXCEPTION_THROWN)]
        return Failure

    def judge(self, trial: bool, outcome: Outcome, slow: bool, now: float) -> None:
        config = self.config
        if self.state is State.HALF_OPEN and trial:
            if outcome not in HEALTH:
                self.trials_issued -= 1  # an ignored trial gives its place to the next call
                return
            self.trials.append((outcome in ERRORS, slow))
            n = len(self.trials)
            if n < config.half_open_calls:
                return
            errors, slows = sum(e for e, _ in self.trials), sum(s for _, s in self.trials)
            failing = errors * 100 >= config.failure_rate_threshold * n
            too_slow = slows * 100 >= config.slow_call_rate_threshold * n
            self.move(State.OPEN if failing or too_slow else State.CLOSED, now)
            return
        if self.state is not State.CLOSED:
            return
        recent = self.in_window(now)
        n = len(recent)
        if n < config.minimum_calls:
            return
        errors, slows = sum(e for _, e, _ in recent), sum(s for _, _, s in recent)
        if errors * 100 >= config.failure_rate_threshold * n or slows * 100 >= config.slow_call_rate_threshold * n:
            self.move(State.OPEN, now)

    def in_window(self, now: float) -> list[tuple[int, bool, bool]]:
        oldest = int(now) - self.config.window
        return [h for h in self.health if h[0] > oldest]

    def window_counts(self, now: float) -> Counter[Outcome]:
        oldest = int(now) - self.config.window
        return Counter(outcome for second, outcome in self.counts if second > oldest)


class BreakerMachine(RuleBasedStateMachine):
    """One breaker with a one-place bulkhead, a fake clock, and the model beside it."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self._saved = (clock.wall, execution.perf_counter)
        clock.wall = self.clock.wall
        execution.perf_counter = self.clock.perf_counter
        self.seen: list[Transition] = []

    def teardown(self) -> None:
        clock.wall, execution.perf_counter = self._saved

    @initialize(
        window=st.integers(1, 5),
        minimum_calls=st.integers(1, 6),
        failure_rate=st.sampled_from([1.0, 25.0, 50.0, 60.0, 100.0]),
        slow_rate=st.sampled_from([1.0, 50.0, 100.0]),
        slow_call=st.sampled_from([None, 0.1]),
        wait_in_open=st.sampled_from([0.0, 0.5, 2.0, 5.0]),
        half_open_calls=st.integers(1, 3),
        fallback=st.booleans(),
    )
    def create(
        self,
        window: int,
        minimum_calls: int,
        failure_rate: float,
        slow_rate: float,
        slow_call: float | None,
        wait_in_open: float,
        half_open_calls: int,
        fallback: bool,
    ) -> None:
        config = BreakerConfig(
            window=window,
            minimum_calls=minimum_calls,
            failure_rate_threshold=failure_rate,
            slow_call_rate_threshold=slow_rate,
            slow_call_duration=slow_call,
            wait_in_open=wait_in_open,
            half_open_calls=half_open_calls,
            failure=(Failure,),
            ignore=(Ignored,),
            bad_request=(BadRequest,),
        )
        self.model = Model(config, fallback)
        self.breaker = CircuitBreaker(
            "machine.call",
            config=config,
            bulkhead=1,
            fallback=(lambda: "fallback") if fallback else None,
            register=False,
        )
        self.breaker.add_listener(self.seen.append)

    def call(self, outcome: Outcome, latency: float) -> None:
        def protected() -> str:
            self.clock.elapse(latency)
            if outcome in RAISES:
                raise RAISES[outcome]()
            return "ok"

        expected = self.model.attempt(outcome, latency, self.clock.now)
        try:
            got: Any = self.breaker.call(protected)
        except (Failure, Ignored, BadRequest, CallNotPermitted, BulkheadFull) as exc:
            got = type(exc)
        assert got == expected

    @rule(kind=st.sampled_from(sorted(KINDS)))
    def make_call(self, kind: str) -> None:
        self.call(*KINDS[kind])

    @rule()
    def call_while_bulkhead_full(self) -> None:
        bulkhead = self.breaker.bulkhead
        assert bulkhead is not None
        assert bulkhead.try_acquire()
        try:
            self.call(Outcome.SEMAPHORE_REJECTED, FAST)
        finally:
            bulkhead.release()

    @rule(ms=st.one_of(st.integers(0, 1500), st.integers(0, 12_000)))
    def advance(self, ms: int) -> None:
        self.clock.advance(ms / 1000)

    @precondition(lambda self: self.model.state is not State.FORCED_OPEN)
    @rule(action=st.sampled_from(["force_open", "force_closed", "disable", "metrics_only", "reset"]))
    def force(self, action: str) -> None:
        getattr(self.breaker, action)()
        target = {
            "force_open": State.FORCED_OPEN,
            "force_closed": State.FORCED_CLOSED,
            "disable": State.DISABLED,
            "metrics_only": State.METRICS_ONLY,
            "reset": State.CLOSED,
        }[action]
        self.model.move(target, self.clock.now)

    @precondition(lambda self: self.model.state is State.FORCED_OPEN)
    @rule()
    def reset_forced_open(self) -> None:
        self.breaker.reset()
        self.model.move(State.CLOSED, self.clock.now)

    @invariant()
    def same_state(self) -> None:
        assert self.breaker.state is self.model.shown_state(self.clock.now)

    @invariant()
    def same_transitions(self) -> None:
        assert [(t.from_state, t.to_state) for t in self.seen] == self.model.transitions
        assert all(t.breaker == "machine.call" and t.reason for t in self.seen)

    @invariant()
    def same_rolling_counts(self) -> None:
        buckets = self.breaker.recent_buckets()
        got: Counter[Outcome] = Counter()
        for bucket in buckets:
            assert min(bucket.counts) >= 0
            got.update({Outcome(i): n for i, n in enumerate(bucket.counts) if n})
        assert got == self.model.window_counts(self.clock.now)

    @invariant()
    def same_health(self) -> None:
        self.breaker.recent_buckets()  # moves the window to now, as the next call would
        recent = self.model.in_window(self.clock.now)
        window = self.breaker.window
        assert (window.calls, window.errors, window.slow) == (
            len(recent),
            sum(e for _, e, _ in recent),
            sum(s for _, _, s in recent),
        )

    @invariant()
    def nothing_in_flight(self) -> None:
        assert self.breaker.concurrency == 0
        assert self.breaker.bulkhead is not None
        assert self.breaker.bulkhead.active == 0


BreakerMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestBreakerMachine = BreakerMachine.TestCase


@pytest.fixture(autouse=True)
def quiet_transitions(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, "tracehouse.breakers")


# -- the same rules, one scripted example each ----------------------------------------------------


def scripted(fake_clock: FakeClock, **settings: Any) -> tuple[CircuitBreaker, list[Transition]]:
    settings.setdefault("failure", (Failure,))
    b = CircuitBreaker("scripted.call", register=False, **settings)
    seen: list[Transition] = []
    b.add_listener(seen.append)
    return b, seen


def raising(error: type[Exception]) -> Any:
    def fn() -> None:
        raise error()

    return fn


def succeed(b: CircuitBreaker, clock_: FakeClock, latency: float = FAST) -> Any:
    return b.call(lambda: clock_.elapse(latency) or "ok")


def fail(b: CircuitBreaker) -> None:
    with pytest.raises((Failure, CallNotPermitted, BulkheadFull)):
        b.call(raising(Failure))


def test_opens_only_once_minimum_calls_are_counted(fake_clock: FakeClock) -> None:
    b, seen = scripted(fake_clock, minimum_calls=4, failure_rate_threshold=50)
    for _ in range(3):
        fail(b)
    assert b.state is State.CLOSED  # 100 % failing, but only 3 calls
    succeed(b, fake_clock)
    assert b.state is State.OPEN  # 3 of 4
    assert [(t.from_state, t.to_state) for t in seen] == [(State.CLOSED, State.OPEN)]
    assert seen[0].reason == "failure rate 75.0 % of 4"


def test_stays_closed_below_the_failure_rate(fake_clock: FakeClock) -> None:
    b, _ = scripted(fake_clock, minimum_calls=4, failure_rate_threshold=50)
    for _ in range(3):
        succeed(b, fake_clock)
    fail(b)
    fail(b)  # 2 of 5 = 40 %
    assert b.state is State.CLOSED
    fail(b)  # 3 of 6 = 50 %
    assert b.state is State.OPEN


def test_slow_calls_open_it_at_their_rate(fake_clock: FakeClock) -> None:
    b, seen = scripted(fake_clock, minimum_calls=2, slow_call_duration=0.1, slow_call_rate_threshold=50)
    succeed(b, fake_clock, FAST)
    succeed(b, fake_clock, FAST)
    succeed(b, fake_clock, SLOW)  # 1 of 3
    assert b.state is State.CLOSED
    succeed(b, fake_clock, SLOW)  # 2 of 4
    assert b.state is State.OPEN
    assert seen[-1].reason == "slow call rate 50.0 % of 4"


def test_failures_leave_the_window_as_time_passes(fake_clock: FakeClock) -> None:
    b, _ = scripted(fake_clock, window=3, minimum_calls=2, failure_rate_threshold=60)
    fail(b)  # second 0
    fake_clock.advance(1)
    succeed(b, fake_clock)  # second 1: 1 of 2
    fake_clock.advance(2)
    fail(b)  # second 3: second 0 has left the 3 s window, so 1 of 2 are counted, not 2 of 3
    assert b.state is State.CLOSED
    fake_clock.advance(2.5)
    fail(b)  # second 5: seconds 3 to 5 are in the window, 2 of 2
    assert b.state is State.OPEN


def test_half_open_lets_the_trials_through_and_closes_on_their_success(fake_clock: FakeClock) -> None:
    b, seen = scripted(fake_clock, minimum_calls=1, wait_in_open=5, half_open_calls=2, fallback=lambda: "fb")
    assert b.call(raising(Failure)) == "fb"
    assert b.state is State.OPEN
    fake_clock.advance(4.9)
    assert b.call(lambda: "real") == "fb"  # still open: short-circuited
    fake_clock.advance(0.1)
    assert b.state is State.HALF_OPEN  # what the next call finds
    assert succeed(b, fake_clock) == "ok"  # trial 1 of 2
    assert b.state is State.HALF_OPEN
    assert succeed(b, fake_clock) == "ok"  # trial 2 of 2: closes, with a clean window
    assert b.state is State.CLOSED
    assert (b.window.calls, b.window.errors) == (0, 0)
    assert [(t.from_state, t.to_state) for t in seen] == [
        (State.CLOSED, State.OPEN),
        (State.OPEN, State.HALF_OPEN),
        (State.HALF_OPEN, State.CLOSED),
    ]


def test_a_failed_trial_opens_it_again_for_another_wait(fake_clock: FakeClock) -> None:
    b, seen = scripted(fake_clock, minimum_calls=1, wait_in_open=5)
    fail(b)
    fake_clock.advance(5)
    fail(b)  # the trial
    assert b.state is State.OPEN
    assert seen[-1].reason == "1 of 1 trial calls failed"
    fake_clock.advance(4.9)
    assert b.state is State.OPEN


def test_an_ignored_trial_gives_its_place_to_the_next_call(fake_clock: FakeClock) -> None:
    b, _ = scripted(fake_clock, minimum_calls=1, wait_in_open=1, ignore=(Ignored,))
    fail(b)
    fake_clock.advance(1)
    with pytest.raises(Ignored):
        b.call(raising(Ignored))
    assert succeed(b, fake_clock) == "ok"
    assert b.state is State.CLOSED


def test_a_trial_refused_by_the_bulkhead_is_a_failed_trial(fake_clock: FakeClock) -> None:
    """Regression: the refused trial's place was never given back, so HALF_OPEN was never left."""
    b, _ = scripted(fake_clock, minimum_calls=1, wait_in_open=1, bulkhead=1)
    fail(b)
    fake_clock.advance(1)
    assert b.bulkhead is not None
    assert b.bulkhead.try_acquire()
    fail(b)  # the trial, refused: the bulkhead is full
    b.bulkhead.release()
    assert b.state is State.OPEN
    fake_clock.advance(1)
    assert succeed(b, fake_clock) == "ok"  # the next trial
    assert b.state is State.CLOSED


def test_forced_and_manual_states(fake_clock: FakeClock) -> None:
    b, seen = scripted(fake_clock, minimum_calls=1, fallback=lambda: "fb")
    b.force_open()
    assert b.call(lambda: "real") == "fb"
    fake_clock.advance(3600)
    assert b.state is State.FORCED_OPEN  # no wait ends a forced open
    for force, state in [(b.force_closed, State.FORCED_CLOSED), (b.disable, State.DISABLED)]:
        force()
        for _ in range(5):
            assert b.call(raising(Failure)) == "fb"  # every call runs, none opens it
        assert b.state is state
    b.metrics_only()
    fail_count = sum(bucket.counts[Outcome.FAILURE] for bucket in b.recent_buckets())
    assert b.call(raising(Failure)) == "fb"
    assert sum(bucket.counts[Outcome.FAILURE] for bucket in b.recent_buckets()) == fail_count + 1
    assert b.state is State.METRICS_ONLY
    b.reset()
    assert b.state is State.CLOSED
    assert b.window.calls == 0  # reset forgets the health, not the counts to report
    assert sum(bucket.counts[Outcome.FAILURE] for bucket in b.recent_buckets()) == fail_count + 1
    assert [t.to_state for t in seen] == [
        State.FORCED_OPEN,
        State.FORCED_CLOSED,
        State.DISABLED,
        State.METRICS_ONLY,
        State.CLOSED,
    ]
    assert [t.reason for t in seen] == ["forced open", "forced closed", "disabled", "metrics only", "reset"]


def test_a_failing_listener_is_logged_not_raised(fake_clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    b, seen = scripted(fake_clock, minimum_calls=1)

    def broken(transition: Transition) -> None:
        raise RuntimeError("listener broke")

    b.add_listener(broken)
    fail(b)
    assert b.state is State.OPEN
    assert len(seen) == 1
    assert any("a state listener failed" in r.getMessage() for r in caplog.records)


def test_opening_and_closing_are_warnings_a_half_open_trial_is_not(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A service's log (WARNING by default) shows a breaker open and recover, not each trial."""
    caplog.set_level(logging.WARNING, "tracehouse.breakers")
    b, _ = scripted(fake_clock, minimum_calls=1, wait_in_open=1)
    fail(b)
    fake_clock.advance(1.5)
    succeed(b, fake_clock)
    assert b.state is State.CLOSED
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        "breaker scripted.call: CLOSED -> OPEN",
        "breaker scripted.call: HALF_OPEN -> CLOSED",
    ]
