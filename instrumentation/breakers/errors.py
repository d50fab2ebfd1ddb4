"""What a protected call raises when the breaker, a bulkhead or a timeout refuses it."""

from __future__ import annotations

__all__ = ["BreakerError", "BulkheadFull", "CallNotPermitted", "CallTimeout"]


class BreakerError(Exception):
    """Base of the refusals; ``breaker`` is the name of the breaker or bulkhead that refused."""

    def __init__(self, breaker: str, message: str) -> None:
        super().__init__(f"{breaker}: {message}")
        self.breaker = breaker


class CallNotPermitted(BreakerError):
    """The breaker is open (or forced open): the call was short-circuited and not attempted."""


class BulkheadFull(BreakerError):
    """Every permit of the bulkhead (semaphore or thread pool and its queue) was taken."""


class CallTimeout(BreakerError, TimeoutError):
    """The call did not finish within the breaker's timeout."""
