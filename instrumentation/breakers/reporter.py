"""Pushes every breaker's completed seconds to the collector (``POST /v1/breakers``) once a second.

Runs in one daemon thread and never raises into the service. When the collector is down, samples
wait in a bounded buffer; beyond it the oldest are dropped and counted in :attr:`dropped`. At stop the
running second goes out too. A forked child starts a reporter of its own, with its own instance id.
"""

from __future__ import annotations

import atexit
import json
import logging
import multiprocessing.util
import os
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping
from functools import partial

from tracehouse.instrumentation.breakers.registry import REGISTRY, Registry
from tracehouse.instrumentation.breakers.samples import breaker_properties, bucket_sample, pool_sample
from tracehouse.instrumentation.breakers.window import Bucket
from tracehouse.instrumentation.breakers.wire import BreakerReport, BreakerSample

__all__ = ["BREAKERS_PATH", "BreakerReporter", "start_reporter", "stop_reporter"]

_log = logging.getLogger("tracehouse.breakers")
BREAKERS_PATH = "/v1/breakers"
_PER_REQUEST = 5_000


class BreakerReporter:
    """Collects completed seconds from ``registry`` and posts them to ``url``."""

    def __init__(
        self,
        url: str,
        service: str,
        instance: str,
        cluster: str | None = None,
        headers: Mapping[str, str] | None = None,
        registry: Registry = REGISTRY,
        max_buffered: int = 20_000,
        timeout: float = 2.0,
    ) -> None:
        self.url = url
        self.service, self.instance, self.cluster = service, instance, cluster or service
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.registry = registry
        self.timeout = timeout
        self.dropped = 0
        self.sent = 0
        self._buffer: deque[BreakerSample] = deque()
        self._max_buffered = max_buffered
        self._last: dict[tuple[str, str], int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="tracehouse-breaker-reporter", daemon=True)
        self._thread.start()

    def stop(self, flush: bool = True) -> None:
        """Stop the thread; with ``flush``, report once more, the running second included (its calls
        would be lost at exit otherwise)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if flush:
            self.report_once(running=True)

    def _loop(self) -> None:
        while not self._stop.wait(1.05 - time.time() % 1.0):  # just after each second turns
            try:
                self.report_once()
            except Exception:
                _log.exception("tracehouse: reporting breaker stats failed")

    def report_once(self, running: bool = False) -> bool:
        """Collect the completed seconds (with ``running``, the running one too) and send what is
        buffered; ``True`` when all was sent."""
        self.collect(running)
        return self.send()

    def collect(self, running: bool = False) -> None:
        """Buffer the completed seconds not buffered yet. With ``running``, also the second still
        running, as it is so far; it is not marked as sent, so a later collect sends it again whole,
        which replaces the partial sample in the store (one row per instance and second): no double count."""
        for breaker in self.registry.breakers():
            properties = breaker_properties(breaker)
            key = ("command", breaker.name)
            buckets, oldest = breaker.completed_buckets(self._last.get(key, breaker.created_second - 1), running)
            self._take(key, buckets, oldest, partial(bucket_sample, breaker, properties=properties), running)
        for pool in self.registry.pools():
            gauges = pool.gauges()
            key = ("threadpool", pool.name)
            buckets, oldest = pool.completed_buckets(self._last.get(key, pool.created_second - 1), running)
            self._take(key, buckets, oldest, partial(pool_sample, pool, gauges=gauges), running)

    def _take(
        self,
        key: tuple[str, str],
        buckets: list[Bucket],
        oldest: int,
        make: Callable[[Bucket], BreakerSample],
        running: bool = False,
    ) -> None:
        last = self._last.get(key)
        if last is not None and last < oldest - 1:
            self.dropped += oldest - 1 - last  # the reporter fell behind the ring
        for bucket in buckets:
            self._buffer.append(make(bucket))
        complete = buckets[:-1] if running else buckets
        if complete:
            self._last[key] = complete[-1].second
        while len(self._buffer) > self._max_buffered:
            self._buffer.popleft()
            self.dropped += 1

    def send(self) -> bool:
        while self._buffer:
            batch = [self._buffer[i] for i in range(min(_PER_REQUEST, len(self._buffer)))]
            verdict = self._post(batch)
            if verdict == "retry":
                return False
            for _ in batch:
                self._buffer.popleft()
            if verdict == "sent":
                self.sent += len(batch)
            else:
                self.dropped += len(batch)
        return True

    def _post(self, batch: list[BreakerSample]) -> str:
        report = BreakerReport(self.service, self.instance, self.cluster, tuple(batch))
        body = json.dumps(report.to_json(), separators=(",", ":")).encode()
        request = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310
                answer.read()
        except urllib.error.HTTPError as error:
            if error.code in (408, 429) or error.code >= 500:
                return self._unreachable(f"HTTP {error.code}")
            _log.error("tracehouse: the collector refused breaker stats (HTTP %s): %s", error.code, _reason(error))
            return "refused"
        except (OSError, ValueError) as error:
            return self._unreachable(str(error))
        if self._failing:
            _log.info("tracehouse: breaker stats reach the collector again")
        self._failing = False
        return "sent"

    def _unreachable(self, why: str) -> str:
        if not self._failing:
            _log.warning("tracehouse: breaker stats cannot be sent to %s (%s); buffering", self.url, why)
        self._failing = True
        return "retry"


def _reason(error: urllib.error.HTTPError) -> str:
    try:
        return error.read(500).decode("utf-8", "replace")
    except OSError:
        return ""


_global: BreakerReporter | None = None
_global_lock = threading.Lock()
#: How a forked child names its instance (``None``: the parent's name).
_child_instance: Callable[[], str] | None = None


def start_reporter(
    url: str,
    service: str,
    instance: str,
    cluster: str | None = None,
    headers: Mapping[str, str] | None = None,
    child_instance: Callable[[], str] | None = None,
) -> BreakerReporter:
    """Start the process-wide reporter (once; later calls return the running one).

    A child forked later (gunicorn, celery prefork, ``multiprocessing``) starts its own reporter, as
    ``child_instance()`` names it (by default ``instance``), reporting only what the child counts."""
    global _global, _child_instance
    with _global_lock:
        if _global is None:
            _global = BreakerReporter(url, service, instance, cluster, headers)
            _child_instance = child_instance
            _global.start()
            atexit.register(stop_reporter)
            multiprocessing.util.register_after_fork(stop_reporter, _stop_at_multiprocessing_exit)
        return _global


def _stop_at_multiprocessing_exit(_: object) -> None:
    """In a child of ``multiprocessing``: it leaves through ``os._exit``, which runs no ``atexit`` hook,
    only multiprocessing's finalizers (cleared before this runs, so registered from here)."""
    multiprocessing.util.Finalize(None, stop_reporter, exitpriority=0)


def _restart_in_child() -> None:
    """After fork, in the child: the parent's reporter thread is gone; start one of the child's own.
    The registry has already reset its counts (its fork hook was registered first)."""
    global _global, _global_lock
    _global_lock = threading.Lock()
    parent, _global = _global, None
    if parent is None:
        return
    try:
        instance = parent.instance if _child_instance is None else _child_instance()
        headers = {k: v for k, v in parent.headers.items() if k != "Content-Type"}
        child = BreakerReporter(parent.url, parent.service, instance, parent.cluster, headers, parent.registry)
        child.start()
        _global = child  # the atexit hook the parent registered is inherited and stops this one
    except Exception:
        _log.exception("tracehouse: starting breaker reporting in a forked process failed")


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_restart_in_child)


def stop_reporter() -> None:
    """Stop the process-wide reporter after one last report."""
    global _global
    with _global_lock:
        reporter, _global = _global, None
    if reporter is not None:
        reporter.stop()
