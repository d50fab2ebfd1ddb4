"""Every breaker and thread pool of this process, by name: what the reporter and ``/hystrix.stream`` read.

Names are keys, as Hystrix's command keys: one breaker per name. A forked child gets fresh locks and
counts of its own (:meth:`Registry.after_fork_in_child`), so it never reports its parent's calls.
"""

from __future__ import annotations

import logging
import os
import threading

from tracehouse.instrumentation.breakers.breaker import BreakerCore
from tracehouse.instrumentation.breakers.bulkhead import ThreadPoolBulkhead

__all__ = ["REGISTRY", "Registry"]

_log = logging.getLogger("tracehouse.breakers")


class Registry:
    """Breakers and thread pools by name.

    A breaker registered under a name another breaker object holds replaces it, with a warning: the
    old one's counts and state are no longer reported. To share one circuit per name, as Hystrix does
    per command key, get breakers with ``breaker(name)``, which returns the one already registered.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._breakers: dict[str, BreakerCore] = {}
        self._pools: dict[str, ThreadPoolBulkhead] = {}

    def add(self, breaker: BreakerCore) -> None:
        with self._lock:
            old = self._breakers.get(breaker.name)
            self._breakers[breaker.name] = breaker
        if old is not None and old is not breaker:
            _log.warning(
                "tracehouse: a second breaker named %r replaces the first, whose counts and state are no "
                "longer reported; use breaker(%r) to share one breaker per name",
                breaker.name,
                breaker.name,
            )

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

    def after_fork_in_child(self) -> None:
        """Run in a forked child (no other thread exists): new locks, and counts of the child's own."""
        self._lock = threading.Lock()
        for breaker in self._breakers.values():
            breaker.after_fork_in_child()
        for pool in self._pools.values():
            pool.after_fork_in_child()


REGISTRY = Registry()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=REGISTRY.after_fork_in_child)
