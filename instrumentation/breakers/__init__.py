"""Circuit breakers, bulkheads and timeouts with Hystrix-grade rolling stats, for sync and async code.

``@breaker("payments.charge", timeout=0.8, fallback=...)`` protects a function; every breaker keeps
one-second buckets of outcome counts and a mergeable latency histogram, which the reporter pushes
to the collector each second and ``/hystrix.stream`` shows. Base install only: no server dependency.
"""

from __future__ import annotations

from tracehouse.instrumentation.breakers.breaker import State, Transition
from tracehouse.instrumentation.breakers.bulkhead import SemaphoreBulkhead, ThreadPoolBulkhead
from tracehouse.instrumentation.breakers.config import BreakerConfig
from tracehouse.instrumentation.breakers.errors import BreakerError, BulkheadFull, CallNotPermitted, CallTimeout
from tracehouse.instrumentation.breakers.execution import CircuitBreaker, breaker
from tracehouse.instrumentation.breakers.registry import REGISTRY, Registry
from tracehouse.instrumentation.breakers.window import Outcome

__all__ = [
    "REGISTRY",
    "BreakerConfig",
    "BreakerError",
    "BulkheadFull",
    "CallNotPermitted",
    "CallTimeout",
    "CircuitBreaker",
    "Outcome",
    "Registry",
    "SemaphoreBulkhead",
    "State",
    "ThreadPoolBulkhead",
    "Transition",
    "breaker",
]
