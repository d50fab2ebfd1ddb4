"""A forked worker (gunicorn, celery prefork, ``multiprocessing``) reports its own breaker stats: its
own reporter thread, its own instance id (the one its spans get), and only the calls it made — not
the counts it inherited from its parent's rolling windows.

A real collector on loopback, the real set-up code, real forked processes.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import threading
from typing import Any

import pytest

from tests.unit.test_breaker_reporter import Collector, collector  # noqa: F401 - the fixture
from tracehouse.instrumentation import InstrumentationConfig, _setup
from tracehouse.instrumentation.breakers import REGISTRY, CallNotPermitted, CircuitBreaker, State, reporter

pytestmark = pytest.mark.usefixtures("clean_breakers")
FORK = multiprocessing.get_context("fork")


def calls_in_child(n: int) -> None:
    running = reporter._global
    assert running is not None
    assert running._thread is not None
    assert running._thread.is_alive()
    assert running.instance == f"{socket.gethostname()}:{os.getpid()}"
    found = REGISTRY.get("fork.inventory")
    assert isinstance(found, CircuitBreaker)
    for _ in range(n):
        found.call(lambda: None)


def successes(server: Collector, instance: str) -> int:
    samples: list[dict[str, Any]] = [s for r in server.reports if r["instance"] == instance for s in r["samples"]]
    return sum(s["counts"].get("success", 0) for s in samples if s["name"] == "fork.inventory")


def test_a_forked_child_reports_its_own_calls_under_its_own_id(collector: Collector) -> None:  # noqa: F811
    base = collector.url.removesuffix("/v1/breakers")
    config = InstrumentationConfig(service_name="forking", endpoint=base, auto_breakers="off")
    parent = CircuitBreaker("fork.inventory")
    for _ in range(3):
        parent.call(lambda: None)
    _setup._start_breaker_reporting(config)
    try:
        child = FORK.Process(target=calls_in_child, args=(2,))
        child.start()
        child.join(30)
        assert child.exitcode == 0
        # The child flushed at exit (multiprocessing leaves through os._exit: no atexit hook).
        assert successes(collector, f"{socket.gethostname()}:{child.pid}") == 2
    finally:
        reporter.stop_reporter()
    assert successes(collector, f"{socket.gethostname()}:{os.getpid()}") == 3


def test_a_child_forked_while_a_parent_thread_held_the_trial_or_a_permit_can_call() -> None:
    """Calls in flight at the fork belong to the parent's threads, which do not exist in the child:
    their half-open trial slot and bulkhead permit are free there (else the child refuses for good)."""
    breaker = CircuitBreaker("fork.trial", register=False, half_open_calls=1, bulkhead=1)
    breaker._set(State.HALF_OPEN, "test")
    inside, release = multiprocessing.Event(), multiprocessing.Event()

    def trial() -> None:  # a parent thread holding the one trial slot and the one permit
        breaker.call(lambda: (inside.set(), release.wait(30)))

    holder = threading.Thread(target=trial)
    holder.start()
    try:
        assert inside.wait(30)
        with pytest.raises(CallNotPermitted):  # in the parent, the slot is taken
            breaker.call(lambda: None)
        breaker.after_fork_in_child()  # what the fork hook runs in the child
        assert breaker.call(lambda: "called") == "called"
    finally:
        release.set()
        holder.join(30)
