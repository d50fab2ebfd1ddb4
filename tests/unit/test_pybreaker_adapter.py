"""The pybreaker listener against the real pybreaker: calls pybreaker lets in are counted with their
latency, its refusals as short circuits, its states are mirrored, and nothing it does breaks a call."""

from __future__ import annotations

import importlib
import logging
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pybreaker
import pytest

from tracehouse.instrumentation.breakers import REGISTRY, Registry, State, Transition
from tracehouse.instrumentation.breakers.breaker import BreakerCore
from tracehouse.instrumentation.breakers.pybreaker_adapter import TracehouseListener
from tracehouse.instrumentation.breakers.window import Outcome

pytestmark = pytest.mark.usefixtures("clean_breakers")

ADAPTER = "tracehouse.instrumentation.breakers.pybreaker_adapter"


class Boom(Exception):
    pass


class NotMine(Exception):
    pass


def ok(x: int = 1) -> int:
    return x


def boom() -> None:
    raise Boom


def counts(core: BreakerCore) -> dict[str, int]:
    total: Counter[str] = Counter()
    for bucket in core.recent_buckets():
        total.update({outcome.key: n for outcome, n in zip(Outcome, bucket.counts, strict=True) if n})
    return dict(total)


def latencies(core: BreakerCore) -> int:
    return sum(n for bucket in core.recent_buckets() for n in bucket.latency.values())


def attached(name: str = "payments.charge", **settings: Any) -> tuple[pybreaker.CircuitBreaker, BreakerCore]:
    listener = TracehouseListener(registry=Registry())
    breaker = listener.attach(pybreaker.CircuitBreaker(name=name, **settings))
    return breaker, listener.core(breaker)


def tripped(breaker: pybreaker.CircuitBreaker) -> None:
    """Fail until pybreaker opens (it raises CircuitBreakerError on the call that trips it)."""
    while breaker.current_state != pybreaker.STATE_OPEN:
        with pytest.raises((Boom, pybreaker.CircuitBreakerError)):
            breaker.call(boom)


def test_calls_are_counted_with_their_latency_and_concurrency() -> None:
    breaker, core = attached(fail_max=10)
    assert [breaker.call(ok, i) for i in range(3)] == [0, 1, 2]
    for _ in range(2):
        with pytest.raises(Boom):
            breaker.call(boom)
    assert counts(core) == {"success": 3, "failure": 2}
    assert latencies(core) == 5
    assert max(bucket.max_concurrency for bucket in core.recent_buckets()) == 1
    assert core.concurrency == 0
    assert (core.window.calls, core.window.errors) == (5, 2)


def test_pybreaker_decides_not_the_mirror() -> None:
    breaker, core = attached(fail_max=100)
    for _ in range(25):  # Tracehouse's own rule (20 calls, 50 % failed) would open here
        with pytest.raises(Boom):
            breaker.call(boom)
    assert breaker.current_state == pybreaker.STATE_CLOSED
    assert core.state is State.CLOSED
    assert breaker.call(ok, 3) == 3
    assert counts(core) == {"failure": 25, "success": 1}


def test_the_decorator_and_calling_go_through_the_listener() -> None:
    breaker, core = attached(fail_max=10)

    @breaker
    def double(x: int) -> int:
        return 2 * x

    assert double(21) == 42
    with breaker.calling():
        pass
    assert counts(core) == {"success": 2}


def test_an_excluded_exception_is_a_success_as_pybreaker_says() -> None:
    breaker, core = attached(fail_max=10, exclude=[NotMine])

    def not_mine() -> None:
        raise NotMine

    with pytest.raises(NotMine):
        breaker.call(not_mine)
    assert counts(core) == {"success": 1}
    assert breaker.fail_counter == 0


def test_a_generator_is_counted_when_it_finishes() -> None:
    breaker, core = attached(fail_max=10)

    def numbers() -> Iterator[int]:
        yield 1
        yield 2

    produced = breaker.call(numbers)
    assert core.concurrency == 1  # running until its generator finishes
    assert list(produced) == [1, 2]
    assert counts(core) == {"success": 1}
    assert core.concurrency == 0


def test_it_is_registered_for_the_reporter_under_the_pybreakers_name() -> None:
    listener = TracehouseListener()
    breaker = listener.attach(pybreaker.CircuitBreaker(name="inventory.reserve"))
    core = REGISTRY.get("inventory.reserve")
    assert core is listener.core(breaker)
    assert core is not None
    assert core.group == "inventory"
    assert core.state is State.CLOSED
    assert core.config.wait_in_open == 60.0  # pybreaker's reset_timeout


def test_a_name_and_group_of_its_own_shared_by_every_pybreaker_it_listens_to() -> None:
    registry = Registry()
    listener = TracehouseListener("legacy.payments", group="billing", registry=registry)
    first = listener.attach(pybreaker.CircuitBreaker(name="a"))
    second = listener.attach(pybreaker.CircuitBreaker())
    first.call(ok)
    second.call(ok)
    core = registry.get("legacy.payments")
    assert core is not None
    assert core.group == "billing"
    assert [b.name for b in registry.breakers()] == ["legacy.payments"]
    assert counts(core) == {"success": 2}


def test_states_are_mirrored_with_transitions() -> None:
    breaker, core = attached(fail_max=2, reset_timeout=0)
    seen: list[Transition] = []
    core.add_listener(seen.append)
    tripped(breaker)
    assert core.state is State.OPEN
    assert breaker.call(ok, 7) == 7  # reset_timeout elapsed: pybreaker half-opens, the trial succeeds
    assert core.state is State.CLOSED
    assert [(t.from_state, t.to_state) for t in seen] == [
        (State.CLOSED, State.OPEN),
        (State.OPEN, State.HALF_OPEN),
        (State.HALF_OPEN, State.CLOSED),
    ]
    assert counts(core) == {"failure": 2, "success": 1}  # the re-dispatched trial is one call, not a refusal


def test_a_failed_trial_is_a_failure_not_a_refusal() -> None:
    breaker, core = attached(fail_max=1, reset_timeout=0)
    tripped(breaker)
    with pytest.raises(pybreaker.CircuitBreakerError):
        breaker.call(boom)  # half-open, the trial fails, open again
    assert core.state is State.OPEN
    assert counts(core) == {"failure": 2}


def test_calls_refused_while_open_are_short_circuited() -> None:
    breaker, core = attached(fail_max=1, reset_timeout=60)

    @breaker
    def decorated() -> int:
        return 1

    tripped(breaker)
    for _ in range(2):
        with pytest.raises(pybreaker.CircuitBreakerError):
            breaker.call(ok)
    with pytest.raises(pybreaker.CircuitBreakerError):
        decorated()
    assert counts(core) == {"failure": 1, "short_circuited": 3}
    assert core.concurrency == 0
    assert core.window.calls == 1  # short circuits say nothing about the dependency's health


def test_attaching_twice_changes_nothing() -> None:
    listener = TracehouseListener(registry=Registry())
    breaker = pybreaker.CircuitBreaker(name="twice", fail_max=1, reset_timeout=60)
    assert listener.attach(listener.attach(breaker)) is breaker
    assert breaker.listeners == (listener,)
    tripped(breaker)
    with pytest.raises(pybreaker.CircuitBreakerError):
        breaker.call(ok)
    assert counts(listener.core(breaker)) == {"failure": 1, "short_circuited": 1}


def test_as_a_plain_listener_it_sees_no_refusal() -> None:
    """pybreaker raises CircuitBreakerError before any listener hears of the call: that is what attach is for."""
    listener = TracehouseListener(registry=Registry())
    breaker = pybreaker.CircuitBreaker(name="plain", fail_max=1, reset_timeout=60, listeners=[listener])
    tripped(breaker)
    with pytest.raises(pybreaker.CircuitBreakerError):
        breaker.call(ok)
    core = listener.core(breaker)
    assert counts(core) == {"failure": 1}
    assert core.state is State.OPEN


def test_a_failing_listener_never_breaks_the_call(caplog: pytest.LogCaptureFixture) -> None:
    listener = TracehouseListener("x" * 300, registry=Registry())  # no valid breaker name
    breaker = pybreaker.CircuitBreaker(listeners=[listener])
    with caplog.at_level(logging.ERROR, logger="tracehouse.breakers"):
        assert breaker.call(ok, 5) == 5
    assert "the pybreaker listener failed" in caplog.text


def test_without_pybreaker_the_import_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, ADAPTER)
    monkeypatch.setitem(sys.modules, "pybreaker", None)  # what an absent package looks like to import
    with pytest.raises(ImportError, match="pip install pybreaker"):
        importlib.import_module(ADAPTER)
