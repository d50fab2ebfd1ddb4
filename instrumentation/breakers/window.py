"""The rolling window of a breaker: a ring of one-second buckets of outcome counts and latencies.

Each bucket is also what the reporter ships: a completed second is never written again, so the
reporter reads it without copying on the hot path. Health (calls, failures, slow calls over the
last ``seconds``) is kept as running totals, so deciding whether to open costs no summing.
Not thread-safe by itself: the owning breaker holds its lock around every method.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from tracehouse.instrumentation.breakers.histogram import bucket_of

__all__ = ["HEALTH_ERRORS", "HEALTH_REQUESTS", "Bucket", "Outcome", "RollingWindow"]


class Outcome(IntEnum):
    """What happened to one call, counted as Hystrix counts its events (plus ``IGNORED``)."""

    SUCCESS = 0
    FAILURE = 1
    TIMEOUT = 2
    SHORT_CIRCUITED = 3
    THREAD_POOL_REJECTED = 4
    SEMAPHORE_REJECTED = 5
    BAD_REQUEST = 6
    FALLBACK_SUCCESS = 7
    FALLBACK_FAILURE = 8
    FALLBACK_MISSING = 9
    EXCEPTION_THROWN = 10
    #: An exception the breaker was told to ignore: neither success nor failure (resilience4j).
    IGNORED = 11
    #: A success or failure that took at least ``slow_call_duration``.
    SLOW = 12

    @property
    def key(self) -> str:
        """The name of this outcome on the wire: ``short_circuited`` …"""
        return self.name.lower()


N_OUTCOMES = len(Outcome)
#: Hystrix's requestCount: the outcomes that say something about the dependency's health.
HEALTH_REQUESTS = frozenset(
    {
        Outcome.SUCCESS,
        Outcome.FAILURE,
        Outcome.TIMEOUT,
        Outcome.THREAD_POOL_REJECTED,
        Outcome.SEMAPHORE_REJECTED,
    }
)
#: Hystrix's errorCount.
HEALTH_ERRORS = HEALTH_REQUESTS - {Outcome.SUCCESS}
# Enum members as module globals: ``Outcome.SUCCESS`` costs ~65 ns on Python 3.11, a global ~5 ns.
_SUCCESS, _SLOW = Outcome.SUCCESS, Outcome.SLOW


@dataclass(slots=True)
class Bucket:
    """One second of one breaker."""

    second: int = -1
    counts: list[int] = field(default_factory=lambda: [0] * N_OUTCOMES)
    latency: dict[int, int] = field(default_factory=dict)
    latency_sum_ms: float = 0.0
    max_concurrency: int = 0
    # Health counters; zeroed when the breaker closes, unlike the counts the reporter ships.
    calls: int = 0
    errors: int = 0
    slow: int = 0

    def copy(self) -> Bucket:
        """The reportable part of the bucket (health counters are left out)."""
        return Bucket(self.second, list(self.counts), dict(self.latency), self.latency_sum_ms, self.max_concurrency)

    def reset(self, second: int) -> None:
        self.second = second
        self.counts = [0] * N_OUTCOMES
        self.latency = {}
        self.latency_sum_ms = 0.0
        self.max_concurrency = 0
        self.calls = self.errors = self.slow = 0


class RollingWindow:
    """``seconds`` of health over a ring of ``seconds + slack`` buckets (the slack is for the reporter)."""

    def __init__(self, seconds: int = 10, slow_call_ms: float | None = None, slack: int = 5) -> None:
        if seconds < 1:
            raise ValueError("a rolling window is at least 1 second")
        self.seconds = seconds
        self.slow_call_ms = slow_call_ms
        self._ring = [Bucket() for _ in range(seconds + slack)]
        self._newest = -1
        # The bucket of ``_newest`` and its bounds as floats: ``at`` compares a time to them without ``int``
        # (an empty range until the first second).
        self._current = self._ring[-1]
        self._start = self._end = 0.0
        self.calls = 0
        self.errors = 0
        self.slow = 0

    def bucket(self, second: int) -> Bucket:
        """The bucket of ``second``, advancing the window to it (never backwards)."""
        if second > self._newest:
            self._advance(second)
        elif second < self._newest:
            second = self._newest  # a clock step back: count into the newest second
        return self._ring[second % len(self._ring)]

    def at(self, now: float) -> Bucket:
        """``bucket(int(now))`` for an epoch time ``now``, without the ``int`` while the second lasts."""
        if self._start <= now < self._end:
            return self._current
        return self.bucket(int(now))

    def _advance(self, second: int) -> None:
        if second - self._newest >= self.seconds:
            self.calls = self.errors = self.slow = 0  # the whole window has passed
        else:
            for s in range(self._newest + 1 - self.seconds, second - self.seconds + 1):
                self._evict(s)
        for s in range(max(self._newest + 1, second - len(self._ring) + 1), second + 1):
            self._ring[s % len(self._ring)].reset(s)
        self._newest = second
        self._current = self._ring[second % len(self._ring)]
        self._start, self._end = float(second), float(second + 1)

    def _evict(self, second: int) -> None:
        """Take ``second`` out of the health totals as it leaves the window."""
        old = self._ring[second % len(self._ring)]
        if old.second == second:
            self.calls -= old.calls
            self.errors -= old.errors
            self.slow -= old.slow

    def record(self, second: float, outcome: Outcome, latency_ms: float | None = None) -> Bucket:
        """Count one outcome (and its execution latency) in ``second`` (an epoch time, or its ``int``)."""
        bucket = self._current if self._start <= second < self._end else self.bucket(int(second))
        bucket.counts[outcome] += 1
        if latency_ms is not None:
            index = bucket_of(latency_ms)
            latency = bucket.latency
            latency[index] = latency.get(index, 0) + 1
            bucket.latency_sum_ms += latency_ms
            if self.slow_call_ms is not None and latency_ms >= self.slow_call_ms:
                bucket.counts[_SLOW] += 1
                bucket.slow += 1
                self.slow += 1
        if outcome is _SUCCESS:
            bucket.calls += 1
            self.calls += 1
        elif outcome in HEALTH_REQUESTS:
            bucket.calls += 1
            self.calls += 1
            bucket.errors += 1
            self.errors += 1
        return bucket

    def reset_health(self) -> None:
        """Forget the health totals (the breaker closed); the counts to report stay."""
        for bucket in self._ring:
            bucket.calls = bucket.errors = bucket.slow = 0
        self.calls = self.errors = self.slow = 0

    def completed(self, after: int, now: int, running: bool = False) -> list[Bucket]:
        """Copies of the buckets of seconds in ``(after, now)``, oldest first: ``now`` is still running.
        With ``running``, the bucket of ``now`` too (always there, and last)."""
        self.bucket(now)
        end = now + 1 if running else now
        found = [b.copy() for b in self._ring if after < b.second < end]
        found.sort(key=lambda b: b.second)
        return found

    def forget_counts(self) -> None:
        """Zero the counts to report in every bucket (a forked child starts its own); health stays."""
        for bucket in self._ring:
            bucket.counts = [0] * N_OUTCOMES
            bucket.latency = {}
            bucket.latency_sum_ms = 0.0
            bucket.max_concurrency = 0

    def recent(self, now: int, seconds: int | None = None) -> list[Bucket]:
        """Copies of the buckets of the last ``seconds`` (default: the window), ``now`` included."""
        self.bucket(now)
        span = self.seconds if seconds is None else seconds
        return [b.copy() for b in self._ring if now - span < b.second <= now]

    @property
    def oldest_second(self) -> int:
        """The oldest second still in the ring; older ones are gone."""
        return self._newest - len(self._ring) + 1
