"""Bulkheads: a semaphore (sync and async code) or a thread pool with a bounded queue (sync code).

Both refuse at once when full instead of queueing without bound, as Hystrix did. A thread pool
keeps rolling stats like a HystrixThreadPool (executions, rejections, max active) in its own
window, which the reporter ships as a ``threadpool`` entry.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from tracehouse.instrumentation.breakers import clock
from tracehouse.instrumentation.breakers.window import Bucket, Outcome, RollingWindow

__all__ = ["SemaphoreBulkhead", "ThreadPoolBulkhead"]

T = TypeVar("T")


class SemaphoreBulkhead:
    """At most ``max_concurrent`` calls at once; the next is refused (no waiting)."""

    kind = "SEMAPHORE"

    def __init__(self, max_concurrent: int = 10) -> None:
        if max_concurrent < 1:
            raise ValueError("bulkhead setting max_concurrent: must be at least 1")
        self.max_concurrent = max_concurrent
        self._active = 0
        self._lock = threading.Lock()

    @property
    def active(self) -> int:
        return self._active

    def try_acquire(self) -> bool:
        with self._lock:
            if self._active >= self.max_concurrent:
                return False
            self._active += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._active -= 1

    def after_fork_in_child(self) -> None:
        """In a forked child: a new lock, and no permit held (the parent's calls in flight do not
        end here: their permits would be lost for good)."""
        self._lock = threading.Lock()
        self._active = 0


class ThreadPoolBulkhead:
    """``core_size`` threads and a queue of ``queue_size``; a call beyond both is refused.

    Calls run with the caller's context (so the current span follows them into the pool).
    """

    kind = "THREAD"

    def __init__(self, name: str, core_size: int = 10, queue_size: int = 5, window: int = 10) -> None:
        if core_size < 1:
            raise ValueError("thread pool setting core_size: must be at least 1")
        if queue_size < 0:
            raise ValueError("thread pool setting queue_size: must be >= 0")
        self.name = name
        self.core_size = core_size
        self.queue_size = queue_size
        self.window = RollingWindow(window)
        self._executor = ThreadPoolExecutor(max_workers=core_size, thread_name_prefix=f"tracehouse-{name}")
        self._lock = threading.Lock()
        self._active = 0
        self._queued = 0
        self._largest = 0
        self._completed = 0
        self._submitted = 0
        self.created_second = int(clock.wall())

    def try_reserve(self) -> bool:
        """Take a place (a thread or a queue slot); ``False`` (and a rejection counted) when none is free."""
        with self._lock:
            if self._active + self._queued >= self.core_size + self.queue_size:
                self.window.record(int(clock.wall()), Outcome.THREAD_POOL_REJECTED)
                return False
            self._queued += 1
            self._submitted += 1
            return True

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn`` in the pool on a place taken by :meth:`try_reserve`."""
        context = contextvars.copy_context()
        future = self._executor.submit(self._run, context, fn, args, kwargs)
        future.add_done_callback(self._unqueue_cancelled)
        return future

    def _unqueue_cancelled(self, future: Future[Any]) -> None:
        if future.cancelled():  # it never ran: give its queue slot back
            with self._lock:
                self._queued -= 1

    def _run(self, context: contextvars.Context, fn: Callable[..., T], args: Any, kwargs: Any) -> T:
        with self._lock:
            self._queued -= 1
            self._active += 1
            self._largest = max(self._largest, self._active)
            bucket = self.window.bucket(int(clock.wall()))
            bucket.max_concurrency = max(bucket.max_concurrency, self._active)
        try:
            return context.run(fn, *args, **kwargs)
        finally:
            with self._lock:
                self._active -= 1
                self._completed += 1
                self.window.record(int(clock.wall()), Outcome.SUCCESS)

    def completed_buckets(self, after: int, running: bool = False) -> tuple[list[Bucket], int]:
        """Copies of the completed seconds after ``after`` (with ``running``, the running one last),
        and the oldest second still held."""
        with self._lock:
            return self.window.completed(after, int(clock.wall()), running), self.window.oldest_second

    def after_fork_in_child(self) -> None:
        """In a forked child: a new lock and counts of its own (see :meth:`BreakerCore.after_fork_in_child`)."""
        self._lock = threading.Lock()
        self.window.forget_counts()
        self.created_second = int(clock.wall())
        # The parent's worker threads do not exist here: a new executor, no call active or queued.
        self._executor = ThreadPoolExecutor(max_workers=self.core_size, thread_name_prefix=f"tracehouse-{self.name}")
        self._active = self._queued = 0

    def recent_buckets(self, seconds: int | None = None) -> list[Bucket]:
        with self._lock:
            return self.window.recent(int(clock.wall()), seconds)

    def gauges(self) -> dict[str, float]:
        """The pool's current state, named as in a HystrixThreadPool event."""
        with self._lock:
            return {
                "currentActiveCount": self._active,
                "currentQueueSize": self._queued,
                "currentPoolSize": min(self.core_size, self._largest),
                "currentCorePoolSize": self.core_size,
                "currentMaximumPoolSize": self.core_size,
                "currentLargestPoolSize": self._largest,
                "currentCompletedTaskCount": self._completed,
                "currentTaskCount": self._submitted,
                "propertyValue_queueSizeRejectionThreshold": self.queue_size,
            }

    def shutdown(self, wait: bool = False) -> None:
        """Cancel the queued calls; with ``wait``, also join the threads (running calls finish first)."""
        self._executor.shutdown(wait=wait, cancel_futures=True)
