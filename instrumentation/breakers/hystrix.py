"""Hystrix stream events (``HystrixCommand``, ``HystrixThreadPool``) from a window of breaker samples.

The same code serves a service's own ``/hystrix.stream`` (one host) and the query's
``/turbine.stream`` (many). The original Hystrix Dashboard divides ``errorPercentage``, the latency
means and percentiles and the rolling window by ``reportingHosts`` (Turbine summed them), so for
``hosts`` > 1 those fields are sent multiplied by ``hosts``: the dashboard then shows the true
cluster error % (Σ errors / Σ requests) and merged percentiles, and the right rates. With several
hosts ``isCircuitBreakerOpen`` is what Turbine sent and the dashboard's template tests: the number of
open hosts when all or none are open, ``{"true": n, "false": m}`` when they disagree. A one-host
event is exactly Hystrix's.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tracehouse.instrumentation.breakers.histogram import merge, percentiles_ms
from tracehouse.instrumentation.breakers.wire import BreakerSample

__all__ = [
    "COMMAND_FIELDS",
    "THREAD_POOL_FIELDS",
    "WindowView",
    "command_event",
    "delete_events",
    "thread_pool_event",
    "window_view",
]

_OPEN_STATES = frozenset({"OPEN", "FORCED_OPEN", "HALF_OPEN"})
#: Health: Hystrix's requestCount and errorCount.
_REQUESTS = ("success", "failure", "timeout", "thread_pool_rejected", "semaphore_rejected")
_ERRORS = _REQUESTS[1:]


@dataclass(frozen=True, slots=True)
class WindowView:
    """One breaker (or pool) over a window, summed across ``hosts`` instances."""

    kind: str
    name: str
    group: str
    window_seconds: int
    hosts: int
    counts: Mapping[str, int]
    latency: Mapping[int, int]
    latency_sum_ms: float
    concurrency: int
    max_concurrency: int
    states: Mapping[str, int]
    properties: Mapping[str, Any] = field(default_factory=dict)
    gauges: Mapping[str, float] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return sum(self.counts.get(k, 0) for k in _REQUESTS)

    @property
    def errors(self) -> int:
        return sum(self.counts.get(k, 0) for k in _ERRORS)

    @property
    def error_percentage(self) -> float:
        return 0.0 if self.requests == 0 else 100.0 * self.errors / self.requests

    @property
    def latency_mean_ms(self) -> float:
        calls = sum(self.latency.values())
        return 0.0 if calls == 0 else self.latency_sum_ms / calls

    @property
    def open_hosts(self) -> int:
        """Hosts whose breaker refuses calls (open, forced open or half-open)."""
        return sum(n for state, n in self.states.items() if state in _OPEN_STATES)

    @property
    def is_open(self) -> bool:
        """Open as the dashboard's circle says it: a majority of hosts refuse calls."""
        return self.open_hosts * 2 > sum(self.states.values()) if self.states else False


def window_view(
    samples_by_host: Mapping[str, Iterable[BreakerSample]], window_seconds: int, kind: str = "command"
) -> WindowView:
    """Sum one breaker's per-second samples of each host; a host's state and gauges are its newest."""
    counts: dict[str, int] = {}
    histograms: list[Mapping[int, int]] = []
    latency_sum = 0.0
    concurrency = max_concurrency = 0
    states: dict[str, int] = {}
    gauges: dict[str, float] = {}
    name = group = ""
    properties: Mapping[str, Any] = {}
    for samples in samples_by_host.values():
        newest: BreakerSample | None = None
        for sample in samples:
            for key, n in sample.counts.items():
                counts[key] = counts.get(key, 0) + n
            histograms.append(sample.latency)
            latency_sum += sample.latency_sum_ms
            max_concurrency = max(max_concurrency, sample.max_concurrency)
            if newest is None or sample.second >= newest.second:
                newest = sample
        if newest is None:
            continue
        name, group, properties = newest.name, newest.group, newest.properties
        states[newest.state] = states.get(newest.state, 0) + 1
        concurrency += newest.concurrency
        for key, value in newest.gauges.items():
            gauges[key] = gauges.get(key, 0.0) + value
    return WindowView(
        kind=kind,
        name=name,
        group=group,
        window_seconds=window_seconds,
        hosts=sum(states.values()),
        counts=counts,
        latency=merge(histograms),
        latency_sum_ms=latency_sum,
        concurrency=concurrency,
        max_concurrency=max_concurrency,
        states=states,
        properties=properties,
        gauges=gauges,
    )


def command_event(view: WindowView, now_ms: int | None = None) -> dict[str, Any]:
    """A ``HystrixCommand`` event with every field the dashboard requires, in emission order."""
    hosts = max(1, view.hosts)
    c = view.counts
    percentiles = {key: _ms(value * hosts) for key, value in percentiles_ms(view.latency).items()}
    p = view.properties
    event: dict[str, Any] = {
        "type": "HystrixCommand",
        "name": view.name,
        "group": view.group,
        "currentTime": int(time.time() * 1000) if now_ms is None else now_ms,
        "isCircuitBreakerOpen": _circuit_open(view),
        "errorPercentage": _error_percentage(view),
        "errorCount": view.errors,
        "requestCount": view.requests,
        "rollingCountBadRequests": c.get("bad_request", 0),
        "rollingCountCollapsedRequests": 0,
        "rollingCountEmit": 0,
        "rollingCountExceptionsThrown": c.get("exception_thrown", 0),
        "rollingCountFailure": c.get("failure", 0),
        "rollingCountFallbackEmit": 0,
        "rollingCountFallbackFailure": c.get("fallback_failure", 0),
        "rollingCountFallbackMissing": c.get("fallback_missing", 0),
        "rollingCountFallbackRejection": 0,
        "rollingCountFallbackSuccess": c.get("fallback_success", 0),
        "rollingCountResponsesFromCache": 0,
        "rollingCountSemaphoreRejected": c.get("semaphore_rejected", 0),
        "rollingCountShortCircuited": c.get("short_circuited", 0),
        "rollingCountSuccess": c.get("success", 0),
        "rollingCountThreadPoolRejected": c.get("thread_pool_rejected", 0),
        "rollingCountTimeout": c.get("timeout", 0),
        "currentConcurrentExecutionCount": view.concurrency,
        "rollingMaxConcurrentExecutionCount": view.max_concurrency,
        "latencyExecute_mean": _ms(view.latency_mean_ms * hosts),
        "latencyExecute": percentiles,
        "latencyTotal_mean": _ms(view.latency_mean_ms * hosts),
        "latencyTotal": dict(percentiles),
        "propertyValue_circuitBreakerRequestVolumeThreshold": p.get("circuitBreakerRequestVolumeThreshold", 20),
        "propertyValue_circuitBreakerSleepWindowInMilliseconds": p.get("circuitBreakerSleepWindowInMilliseconds", 5000),
        "propertyValue_circuitBreakerErrorThresholdPercentage": p.get("circuitBreakerErrorThresholdPercentage", 50),
        "propertyValue_circuitBreakerForceOpen": view.states.get("FORCED_OPEN", 0) == view.hosts > 0,
        "propertyValue_circuitBreakerForceClosed": view.states.get("FORCED_CLOSED", 0) == view.hosts > 0,
        "propertyValue_circuitBreakerEnabled": p.get("circuitBreakerEnabled", True),
        "propertyValue_executionIsolationStrategy": p.get("executionIsolationStrategy", "SEMAPHORE"),
        "propertyValue_executionIsolationThreadTimeoutInMilliseconds": p.get("executionTimeoutInMilliseconds", 0),
        "propertyValue_executionTimeoutInMilliseconds": p.get("executionTimeoutInMilliseconds", 0),
        "propertyValue_executionIsolationThreadInterruptOnTimeout": p.get(
            "executionIsolationThreadInterruptOnTimeout", False
        ),
        "propertyValue_executionIsolationThreadPoolKeyOverride": p.get("executionIsolationThreadPoolKeyOverride"),
        "propertyValue_executionIsolationSemaphoreMaxConcurrentRequests": p.get(
            "executionIsolationSemaphoreMaxConcurrentRequests", 0
        ),
        "propertyValue_fallbackIsolationSemaphoreMaxConcurrentRequests": p.get(
            "fallbackIsolationSemaphoreMaxConcurrentRequests", 0
        ),
        "propertyValue_metricsRollingStatisticalWindowInMilliseconds": view.window_seconds * 1000 * hosts,
        "propertyValue_requestCacheEnabled": False,
        "propertyValue_requestLogEnabled": False,
        "reportingHosts": hosts,
        "threadPool": p.get("threadPool", view.group),
    }
    return event


def thread_pool_event(view: WindowView, now_ms: int | None = None) -> dict[str, Any]:
    """A ``HystrixThreadPool`` event: gauges are summed across hosts, as the dashboard expects."""
    hosts = max(1, view.hosts)
    g = view.gauges
    return {
        "type": "HystrixThreadPool",
        "name": view.name,
        "currentTime": int(time.time() * 1000) if now_ms is None else now_ms,
        "currentActiveCount": int(g.get("currentActiveCount", 0)),
        "currentCompletedTaskCount": int(g.get("currentCompletedTaskCount", 0)),
        "currentCorePoolSize": int(g.get("currentCorePoolSize", 0)),
        "currentLargestPoolSize": int(g.get("currentLargestPoolSize", 0)),
        "currentMaximumPoolSize": int(g.get("currentMaximumPoolSize", 0)),
        "currentPoolSize": int(g.get("currentPoolSize", 0)),
        "currentQueueSize": int(g.get("currentQueueSize", 0)),
        "currentTaskCount": int(g.get("currentTaskCount", 0)),
        "rollingCountThreadsExecuted": view.counts.get("success", 0),
        "rollingMaxActiveThreads": view.max_concurrency,
        "rollingCountCommandRejections": view.counts.get("thread_pool_rejected", 0),
        "propertyValue_queueSizeRejectionThreshold": int(g.get("propertyValue_queueSizeRejectionThreshold", 0)),
        "propertyValue_metricsRollingStatisticalWindowInMilliseconds": view.window_seconds * 1000 * hosts,
        "reportingHosts": hosts,
    }


def _circuit_open(view: WindowView) -> bool | int | dict[str, int]:
    """What the dashboard's template tests: ``== reportingHosts`` shows Open (red), ``== 0`` Closed,
    an object "Open n Closed m". One host: Hystrix's boolean (``true == 1`` in JavaScript)."""
    if view.hosts <= 1:
        return view.is_open
    opened = view.open_hosts
    if opened in (0, view.hosts):
        return opened
    return {"true": opened, "false": view.hosts - opened}


def _error_percentage(view: WindowView) -> int:
    """One host: Hystrix's truncated percentage. Several: the true percentage times the hosts, rounded,
    which the dashboard divides by ``reportingHosts`` and rounds to one decimal (16.67 % shows 16.7)."""
    if view.hosts <= 1:
        return int(view.error_percentage)
    return round(view.error_percentage * view.hosts)


#: What the dashboard's JavaScript escapes in a name to make a jQuery selector of it.
_SELECTOR_SPECIAL = re.compile(r"""([ !"#$%&'()*+,./:;<=>?@\[\]^`{|}~])""")
_EVENT_TYPES = {"command": "HystrixCommand", "threadpool": "HystrixThreadPool"}


def delete_events(kind: str, name: str) -> list[dict[str, Any]]:
    """Events that make the dashboard remove the tile of a breaker (or pool) no longer reported.

    Its JavaScript removes ``#CIRCUIT_`` + ``data.escapedName`` but computes ``escapedName`` only for
    events it displays, so the event carries it: the name escaped as the dashboard escapes it, once
    with the ``_0`` suffix of dashboards that number their streams (1.5: a single stream is 0) and once
    without (older ones). Removing a tile that is not there does nothing."""
    escaped = _SELECTOR_SPECIAL.sub(r"\\\1", name)
    return [
        {"type": _EVENT_TYPES[kind], "name": name, "escapedName": key, "deleteData": "true"}
        for key in (f"{escaped}_0", escaped)
    ]


def _ms(value: float) -> float | int:
    """Milliseconds as the dashboard prints them: whole numbers once above 10 ms."""
    return round(value) if value >= 10 else round(value, 3)


#: Field names of each event, in order: what a validator checks for presence and type.
COMMAND_FIELDS = tuple(command_event(window_view({}, 10), 0))
THREAD_POOL_FIELDS = tuple(thread_pool_event(window_view({}, 10, "threadpool"), 0))
