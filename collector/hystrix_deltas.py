"""Successive Hystrix stream events of one instance → per-second delta samples (Turbine 2's way).

A ``/hystrix.stream`` shows *rolling* W-second sums; a :class:`BreakerSample` carries the events of
one second. For each command (and thread pool) and each counter this keeps the deltas it attributed
over the last W seconds — its belief about what the emitter's window holds — and takes as new::

    new(t) = rolling(t) − Σ attributed(s) for t − W < s ≤ t,   clamped at 0

which is ``rolling(t) − rolling(prev) + rolled_out`` where the amount rolling out at second s is what
was attributed at s − W. Continuing from the belief instead of the raw previous value matters after a
clamp: an emitter that drops events earlier than assumed (opossum shows W − 1 whole buckets) would
otherwise have them counted a second time when they leave the belief. It must never emit a negative
count, nor count an event twice; what it cannot know, it documents:

* Events are counted in the second the collector *saw* them (its clock; or later, next point), not
  when they happened.
* Rolling sums only show ``events(t) − events(t − W)``: how a window's events were spread over its
  seconds cannot be recovered (steady load and one burst just before look alike for W seconds). A
  series first seen on a stream open for more than :data:`MAX_GAP` seconds is new (a command's first
  calls): its window is counted in that second, exactly. Otherwise — first seen near a (re)connect,
  or after a gap of more than MAX_GAP seconds — what the window shows beyond the belief is believed
  spread evenly over the seconds nobody watched (at most W − 1) and this one, and only this second's
  share is counted. The rest is counted if the window still shows it once the belief let it go (a
  burst just before: all of it, over the next W seconds); what rolls out as believed (steady load)
  never is — unwatched seconds get no samples, and after a collector restart the old process stored
  them. Counting the whole window at once, believed in one second, made a lump that repeated every W
  seconds under steady load; counting it at once (or back-dated) *and* believing it spread would count
  a burst just before the connect up to twice (events believed earlier than they came leave the belief
  while still shown). Sums over W consecutive watched seconds, ending in one with a snapshot and
  nothing clamped, equal the emitter's rolling sum; sums reaching into unwatched seconds read low.
* An emitter whose events stay visible for less than W (opossum: W − 1) reads up to 1/W low under
  steady load; bursts are counted exactly whichever way it rolls.
* Counter reset (the instance restarted): a count below what was surely attributed in the last
  W − :data:`SURE_MARGIN` seconds (and only from stretches counted exactly: not from a spread window, not
  within W seconds of a clamp) resets that series' history, and the current count is taken as new
  (spread as above when the reset came during a gap).
  A reset hidden by a spread window or a clamp is absorbed instead (counted low, never negative).
* Latency: the stream has only percentiles (of its own window), so the calls counted for a snapshot are
  spread over the percentile points as the ranks fall: the k-th of n at the point whose interval
  holds quantile (k − ½)/n (n = 4 → p25, p50, p75, p90). Read back, the histogram's percentiles are
  the stream's. ``latency_sum_ms`` = ``latencyExecute_mean`` × n.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tracehouse.instrumentation.breakers.histogram import bucket_of, bucket_value_ms
from tracehouse.instrumentation.breakers.wire import BreakerSample

__all__ = ["COMMAND_COUNTS", "MAX_GAP", "POOL_COUNTS", "SURE_MARGIN", "SnapshotDeltas", "spread_latency"]

#: HystrixCommand rolling counters → report count keys (the ``Outcome`` names).
COMMAND_COUNTS = (
    ("rollingCountSuccess", "success"),
    ("rollingCountFailure", "failure"),
    ("rollingCountTimeout", "timeout"),
    ("rollingCountShortCircuited", "short_circuited"),
    ("rollingCountThreadPoolRejected", "thread_pool_rejected"),
    ("rollingCountSemaphoreRejected", "semaphore_rejected"),
    ("rollingCountBadRequests", "bad_request"),
    ("rollingCountFallbackSuccess", "fallback_success"),
    ("rollingCountFallbackFailure", "fallback_failure"),
    ("rollingCountFallbackMissing", "fallback_missing"),
    ("rollingCountExceptionsThrown", "exception_thrown"),
)
#: HystrixThreadPool rolling counters → report count keys.
POOL_COUNTS = (("rollingCountThreadsExecuted", "success"), ("rollingCountCommandRejections", "thread_pool_rejected"))
#: Outcomes whose execution latency the stream's percentiles describe.
_TIMED = ("success", "failure", "timeout")
_KINDS = {"HystrixCommand": "command", "HystrixThreadPool": "threadpool"}
_PREFIX = "propertyValue_"
_MAX_NAME = 200
#: Seconds without a snapshot after which the missed ones count as unwatched (see the module docstring).
MAX_GAP = 2
#: Attributions of the newest W − SURE_MARGIN seconds are surely still in the emitter's window
#: (one second for the emitter's own bucketing, one for observing late, one for jitter).
SURE_MARGIN = 3
_DEFAULT_WINDOW = 10
#: Seconds after its last snapshot that a series is forgotten (longer than any window's roll-out).
_FORGET = 3600
#: Larger counts are nonsense (and would overflow a report's 64-bit counts once added up).
_MAX_COUNT = 2**53


class SnapshotDeltas:
    """Per-second samples of one instance, from its events in the order they arrived.

    :meth:`observe` each event with the second it was seen in (never earlier than the previous one:
    an earlier second is counted into the latest); :meth:`take` the samples of finished seconds. At
    most one sample per (kind, name, second): snapshots of the same second add up.
    """

    def __init__(self) -> None:
        self._series: dict[tuple[str, str], _Series] = {}
        self._done: list[BreakerSample] = []
        #: Counter resets seen (instance restarts), and counts clamped away (never made negative).
        self.resets = 0
        self.clamped = 0
        self._connected_at: int | None = None

    def connected(self, second: int) -> None:
        """The stream was (re)connected in ``second``: series that first appear more than
        :data:`MAX_GAP` seconds later are new ones, counted exactly from their first snapshot."""
        self._connected_at = second

    @property
    def series(self) -> int:
        """The number of commands and pools followed."""
        return len(self._series)

    def observe(self, event: Mapping[str, Any], second: int) -> bool:
        """Take one decoded event; ``False`` for types other than HystrixCommand/HystrixThreadPool.

        Raises ``ValueError`` for a command or pool event without a usable ``name``.
        """
        kind = _KINDS.get(str(event.get("type")))
        if kind is None:
            return False
        name = _name(event.get("name"))
        if name is None:
            raise ValueError(f"{event.get('type')} event without a usable name")
        series = self._series.setdefault((kind, name), _Series())
        second = max(second, series.last_second if series.last_second is not None else second)
        fields = COMMAND_COUNTS if kind == "command" else POOL_COUNTS
        totals = {key: n for source, key in fields if (n := _count(event.get(source))) is not None}
        streaming = self._connected_at is not None and second - self._connected_at > MAX_GAP
        deltas = series.advance(totals, second, _window(event), streaming)
        self.resets += series.reset
        self.clamped += series.clamped
        if series.pending is not None and series.pending.second != second:
            self._done.append(series.pending.sample())
            series.pending = None
        if series.pending is None:
            series.pending = _Pending(kind, name, second)
        series.pending.add(event, deltas)
        return True

    def take(self, before: int) -> list[BreakerSample]:
        """The samples of the seconds before ``before``, oldest first, each handed out once."""
        for key, series in list(self._series.items()):
            if series.pending is not None and series.pending.second < before:
                self._done.append(series.pending.sample())
                series.pending = None
            if series.last_second is not None and series.last_second < before - _FORGET:
                del self._series[key]  # gone from the stream: a name never seen again costs nothing
        ready = sorted((s for s in self._done if s.second < before), key=lambda s: s.second)
        self._done = [s for s in self._done if s.second >= before]
        return ready


@dataclass(slots=True)
class _Second:
    counts: dict[str, int] = field(default_factory=dict)
    precise: bool = True  # counted from a continuous, consistent belief: usable to detect a reset


@dataclass(slots=True)
class _Series:
    """One command or thread pool of the instance: what was attributed to each recent second."""

    history: dict[int, _Second] = field(default_factory=dict)
    last_second: int | None = None
    dirty_until: int = -1
    pending: _Pending | None = None
    reset: int = 0  # of the last advance
    clamped: int = 0  # of the last advance

    def advance(self, totals: Mapping[str, int], second: int, window: int, streaming: bool) -> dict[str, int]:
        """The new events of each counter in ``totals`` (rolling sums seen at ``second``).

        ``streaming``: the connection has been delivering for a while, so a series appearing now is
        new (Hystrix and Tracehouse list a command from its first call on) and its counts are exact.
        """
        unwatched = self._unwatched(second, window, streaming)
        self.last_second = second
        self.history = {s: h for s, h in self.history.items() if s > second - window}
        self.reset = self.clamped = 0
        lump = len(unwatched) > 0
        if self._reset_seen(totals, second, window):
            self.history.clear()
            self.reset, lump = 1, True
        believed = self._sum(self.history.values())
        new = {key: total - believed.get(key, 0) for key, total in totals.items()}
        self.clamped = sum(-n for n in new.values() if n < 0)
        if self.clamped or (lump and any(n > 0 for n in new.values())):
            self.dirty_until = second + window
        return self._attribute({key: max(n, 0) for key, n in new.items()}, unwatched, second)

    def _attribute(self, new: Mapping[str, int], unwatched: range, second: int) -> dict[str, int]:
        """Believe ``new`` spread evenly over the ``unwatched`` seconds and ``second``; count ``second``'s
        share only (the rest is counted if it is still in the window once the belief let it go)."""
        deltas: dict[str, int] = {}
        for key, n in new.items():
            *earlier, deltas[key] = _spread(n, len(unwatched) + 1)
            for past, share in zip(unwatched, earlier, strict=True):
                self.history.setdefault(past, _Second(precise=False)).counts[key] = share
        slot = self.history.setdefault(second, _Second())
        for key, n in deltas.items():
            slot.counts[key] = slot.counts.get(key, 0) + n
        slot.precise = slot.precise and second > self.dirty_until
        return deltas

    def _unwatched(self, second: int, window: int, streaming: bool) -> range:
        """The seconds before ``second`` whose events the window may hold though no snapshot saw them
        come: the window's other seconds for a series first seen near a (re)connect, else a gap's."""
        if self.last_second is None:
            start = second if streaming else second - window + 1
        elif second - self.last_second > MAX_GAP:
            start = max(self.last_second + 1, second - window + 1)
        else:
            start = second
        return range(start, second)

    def _reset_seen(self, totals: Mapping[str, int], second: int, window: int) -> bool:
        sure = self._sum(h for s, h in self.history.items() if h.precise and s >= second - window + SURE_MARGIN)
        return any(totals[key] < n for key, n in sure.items() if key in totals)

    @staticmethod
    def _sum(seconds: Any) -> dict[str, int]:
        total: dict[str, int] = {}
        for slot in seconds:
            for key, n in slot.counts.items():
                total[key] = total.get(key, 0) + n
        return total


@dataclass(slots=True)
class _Pending:
    """The sample of one series being built for one second."""

    kind: str
    name: str
    second: int
    group: str = ""
    state: str = "CLOSED"
    counts: dict[str, int] = field(default_factory=dict)
    latency: dict[int, int] = field(default_factory=dict)
    latency_sum_ms: float = 0.0
    concurrency: int = 0
    max_concurrency: int = 0
    gauges: dict[str, float] = field(default_factory=dict)
    properties: dict[str, str | int | float | bool] = field(default_factory=dict)

    def add(self, event: Mapping[str, Any], deltas: Mapping[str, int]) -> None:
        for key, n in deltas.items():
            self.counts[key] = self.counts.get(key, 0) + n
        self.properties = _properties(event)
        if self.kind == "threadpool":
            self.group = self.name
            self.gauges = _pool_gauges(event)
            self.concurrency = _count(event.get("currentActiveCount")) or 0
            maximum = _count(event.get("rollingMaxActiveThreads")) or 0
        else:
            self.group = _name(event.get("group")) or self.name.split(".", 1)[0] or self.name
            self.state = _state(event)
            self.concurrency = _count(event.get("currentConcurrentExecutionCount")) or 0
            maximum = _count(event.get("rollingMaxConcurrentExecutionCount")) or 0
            self._add_latency(event, sum(deltas.get(key, 0) for key in _TIMED))
        self.max_concurrency = max(self.max_concurrency, maximum, self.concurrency)

    def _add_latency(self, event: Mapping[str, Any], calls: int) -> None:
        if calls <= 0:
            return
        hosts = max(1, _count(event.get("reportingHosts")) or 1)  # aggregated streams send sums
        mean = _number(event.get("latencyExecute_mean"))
        points = _percentiles(event.get("latencyExecute"), hosts)
        if not points and mean is not None:
            points = [(1000, mean / hosts)]
        histogram = spread_latency(calls, points)
        for index, n in histogram.items():
            self.latency[index] = self.latency.get(index, 0) + n
        added = mean / hosts * calls if mean is not None else sum(bucket_value_ms(i) * n for i, n in histogram.items())
        if math.isfinite(self.latency_sum_ms + added):
            self.latency_sum_ms += added

    def sample(self) -> BreakerSample:
        return BreakerSample(
            kind=self.kind,
            name=self.name,
            group=self.group,
            second=self.second,
            state=self.state,
            counts={key: n for key, n in self.counts.items() if n},
            latency=self.latency,
            latency_sum_ms=self.latency_sum_ms,
            concurrency=self.concurrency,
            max_concurrency=self.max_concurrency,
            gauges=self.gauges,
            properties=self.properties,
        )


def _spread(count: int, seconds: int) -> list[int]:
    """``count`` over ``seconds`` as evenly as whole numbers go, oldest first."""
    return [count * (i + 1) // seconds - count * i // seconds for i in range(seconds)]


def spread_latency(calls: int, points: list[tuple[int, float]]) -> dict[int, int]:
    """A histogram of ``calls`` latencies from percentile points ``(tenths of a percent, ms)``.

    The k-th call goes to the first point at or above quantile (k − ½)/calls; the last point takes
    the rest (whatever its level). An approximation: the stream has nothing finer.
    """
    histogram: dict[int, int] = {}
    placed = 0
    ordered = sorted(points)
    for i, (tenths, ms) in enumerate(ordered):
        upto = calls if i == len(ordered) - 1 else min(calls, (tenths * calls + 500) // 1000)
        if upto > placed:
            index = bucket_of(ms)
            histogram[index] = histogram.get(index, 0) + upto - placed
            placed = upto
    return histogram


def _percentiles(value: Any, hosts: int) -> list[tuple[int, float]]:
    """``latencyExecute`` as (tenths of a percent, ms), whatever the key order or number format."""
    if not isinstance(value, Mapping):
        return []
    points: dict[int, float] = {}
    for key, ms in value.items():
        level, latency = _number(key), _number(ms)
        if level is not None and latency is not None and level <= 100:
            points[round(level * 10)] = latency / hosts
    return sorted(points.items())


def _window(event: Mapping[str, Any]) -> int:
    millis = _number(event.get("propertyValue_metricsRollingStatisticalWindowInMilliseconds"))
    if not millis:
        return _DEFAULT_WINDOW
    hosts = max(1, _count(event.get("reportingHosts")) or 1)
    return min(3600, max(1, round(millis / hosts / 1000)))


def _state(event: Mapping[str, Any]) -> str:
    if _flag(event.get("propertyValue_circuitBreakerEnabled")) is False:
        return "DISABLED"
    if _flag(event.get("propertyValue_circuitBreakerForceOpen")):
        return "FORCED_OPEN"
    if _flag(event.get("propertyValue_circuitBreakerForceClosed")):
        return "FORCED_CLOSED"
    return "OPEN" if _open(event.get("isCircuitBreakerOpen")) else "CLOSED"


def _open(value: Any) -> bool:
    """Hystrix's boolean, or an aggregator's (Turbine's, Tracehouse's) open-host count or
    ``{"true": n, "false": m}``: open when most hosts are."""
    if isinstance(value, dict):
        opened, closed = _count(value.get("true")) or 0, _count(value.get("false")) or 0
        return opened > closed
    return bool(_flag(value))


def _properties(event: Mapping[str, Any]) -> dict[str, str | int | float | bool]:
    found: dict[str, str | int | float | bool] = {}
    for key, value in event.items():
        if key.startswith(_PREFIX) and _plain(value):
            found[key.removeprefix(_PREFIX)] = value
    if isinstance(event.get("threadPool"), str) and _plain(event["threadPool"]):
        found["threadPool"] = event["threadPool"]
    return found


def _pool_gauges(event: Mapping[str, Any]) -> dict[str, float]:
    gauges: dict[str, float] = {}
    for key, value in event.items():
        if (key.startswith("current") and key != "currentTime") or key == "propertyValue_queueSizeRejectionThreshold":
            number = _number(value)
            if number is not None:
                gauges[key] = number
    return gauges


def _plain(value: Any) -> bool:
    """A property value the report format carries: a short string, a finite number or a boolean."""
    if isinstance(value, str):
        return len(value) <= 1000
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int | bool)


def _name(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= _MAX_NAME else None


def _number(value: Any) -> float | None:
    """A finite, non-negative number from an int, a float or a numeric string; else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value) and value >= 0:
        return float(value)
    return None


def _count(value: Any) -> int | None:
    number = _number(value)
    return None if number is None or number > _MAX_COUNT else round(number)


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if isinstance(value, int | float):
        return value != 0
    return None
