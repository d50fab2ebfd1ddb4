"""Fixtures of the breaker unit tests: a clock the test moves, and clean-up that leaves no breaker,
thread pool or thread behind. Opt in per module with ``pytestmark = pytest.mark.usefixtures(...)``."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator

import pytest

from tracehouse.instrumentation.breakers import REGISTRY, clock

# By full name: in the package namespace ``breaker`` is the factory, not the module.
execution = importlib.import_module("tracehouse.instrumentation.breakers.execution")


class FakeClock:
    """Wall time (``clock.wall``) and call-latency time (``perf_counter``) that move only when told."""

    def __init__(self, wall: float = 1_700_000_000.0) -> None:
        self.now = wall
        self.perf = 1_000.0

    def wall(self) -> float:
        return self.now

    def perf_counter(self) -> float:
        return self.perf

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def elapse(self, seconds: float) -> None:
        """The running call took ``seconds`` longer (call it from inside the protected function)."""
        self.perf += seconds

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeClock:
        monkeypatch.setattr(clock, "wall", self.wall)
        monkeypatch.setattr(execution, "perf_counter", self.perf_counter)
        return self


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    return FakeClock().install(monkeypatch)


def shut_down_breaker_threads() -> None:
    """Forget every registered breaker, and join the threads of thread pools and timeouts."""
    pools = REGISTRY.pools()
    REGISTRY.clear()
    for pool in pools:
        pool.shutdown(wait=True)
    timeouts = execution._timeout_pool
    if timeouts is not None:
        execution._timeout_pool = None
        timeouts.shutdown(wait=True)


@pytest.fixture
def clean_breakers() -> Iterator[None]:
    """After the test: an empty registry, and no thread the test started still alive."""
    before = set(threading.enumerate())
    yield
    shut_down_breaker_threads()
    left = [t for t in threading.enumerate() if t not in before]
    for thread in left:
        thread.join(timeout=10)
    alive = [t.name for t in left if t.is_alive()]
    assert not alive, f"threads left behind: {alive}"
