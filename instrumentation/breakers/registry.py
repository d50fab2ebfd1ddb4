"""Every breaker and thread pool of this process, by name: what the reporter and ``/hystrix.stream`` read."""

from __future__ import annotations

import threading

from tracehouse.instrumentation.breakers.breaker import BreakerCore
from tracehouse.instrumentation.breakers.bulkhead import ThreadPoolBulkhead

__all__ = ["REGISTRY", "Registry"]


class Registry:
    """Breakers and thread pools by name. A breaker registered under a taken name replaces the old one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._breakers: dict[str, BreakerCore] = {}
        self._pools: dict[str, ThreadPoolBulkhead] = {}

    def add(self, breaker: BreakerCore) -> None:
        with self._lock:
            self._breakers[breaker.name] = breaker

    def get(self, name: str) -> BreakerCore | None:
        return self._breakers.get(name)

    def remove(self, name: str) -> None:
        """Forget the breaker ``name`` (thread pools are shared by a group and stay)."""
        with self._lock:
            self._breakers.pop(name, None)

    def breakers(self) -> list[BreakerCore]:
        with self._lock:
            return list(self._breakers.values())

    def pool(self, name: str, core_size: int = 10, queue_size: int = 5) -> ThreadPoolBulkhead:
        """The thread pool ``name``, created with these sizes the first time it is asked for."""
        with self._lock:
            found = self._pools.get(name)
            if found is None:
                found = self._pools[name] = ThreadPoolBulkhead(name, core_size, queue_size)
            return found

    def pools(self) -> list[ThreadPoolBulkhead]:
        with self._lock:
            return list(self._pools.values())

    def clear(self) -> None:
        """Forget everything (tests); thread pools are shut down."""
        with self._lock:
            pools = list(self._pools.values())
            self._breakers.clear()
            self._pools.clear()
        for pool in pools:
            pool.shutdown()


REGISTRY = Registry()
