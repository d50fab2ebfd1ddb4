"""Settings of one circuit breaker, with Hystrix's and resilience4j's defaults; frozen and validated."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

__all__ = ["BreakerConfig"]

ExceptionTypes = tuple[type[BaseException], ...]


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """How a breaker decides. Rates are percentages; durations are seconds.

    The breaker opens when, over the last ``window`` seconds, at least ``minimum_calls`` calls were
    counted (Hystrix's request volume threshold) and the failure rate reached
    ``failure_rate_threshold`` or the share of calls slower than ``slow_call_duration`` reached
    ``slow_call_rate_threshold``. After ``wait_in_open`` it lets ``half_open_calls`` trial calls
    through: if they are healthy it closes, else it opens again.

    Exceptions are classified in this order: ``bad_request`` ones (a caller's mistake: counted,
    re-raised, never a failure, no fallback — Hystrix's HystrixBadRequestException), ``ignore``
    ones (neither success nor failure), then ``failure`` ones; anything else (``KeyboardInterrupt``,
    task cancellation) passes through uncounted as an ignored outcome.
    """

    window: int = 10
    failure_rate_threshold: float = 50.0
    slow_call_rate_threshold: float = 100.0
    slow_call_duration: float | None = None
    minimum_calls: int = 20
    wait_in_open: float = 5.0
    half_open_calls: int = 1
    timeout: float | None = None
    failure: ExceptionTypes = (Exception,)
    ignore: ExceptionTypes = ()
    bad_request: ExceptionTypes = ()
    group: str | None = None

    def validate(self) -> BreakerConfig:
        """Return self, or raise ``ValueError`` naming the bad setting."""
        _check(1 <= self.window <= 3600, "window", "must be 1–3600 seconds")
        _check(0 < self.failure_rate_threshold <= 100, "failure_rate_threshold", "must be in (0, 100]")
        _check(0 < self.slow_call_rate_threshold <= 100, "slow_call_rate_threshold", "must be in (0, 100]")
        _check(self.slow_call_duration is None or self.slow_call_duration > 0, "slow_call_duration", "must be > 0")
        _check(self.minimum_calls >= 1, "minimum_calls", "must be at least 1")
        _check(self.wait_in_open >= 0, "wait_in_open", "must be >= 0")
        _check(self.half_open_calls >= 1, "half_open_calls", "must be at least 1")
        _check(self.timeout is None or self.timeout > 0, "timeout", "must be > 0 seconds")
        return self

    def replace(self, **changes: Any) -> BreakerConfig:
        return replace(self, **changes).validate()

    @property
    def slow_call_ms(self) -> float | None:
        return None if self.slow_call_duration is None else self.slow_call_duration * 1000.0


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ValueError(f"breaker setting {key}: {message}")
