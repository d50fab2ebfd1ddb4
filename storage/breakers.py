"""Breaker stats in ClickHouse: per-second delta rows in, per-instance window sums and step series out.

Every value is bound. Rows are keyed (cluster, kind, name, second, instance); a second written
twice (a retried report) is one row after FINAL, which every read uses.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tracehouse.instrumentation.breakers.wire import BreakerReport, BreakerSample

__all__ = [
    "CLUSTERS",
    "COLUMNS",
    "HISTORY",
    "TABLE",
    "HistoryPoint",
    "InstanceWindow",
    "decode_properties",
    "history_point",
    "instance_window",
    "rows",
    "window_query",
]

TABLE = "tracehouse_breaker_stats"
COLUMNS = (
    "Timestamp",
    "Cluster",
    "Kind",
    "Name",
    "InstanceId",
    "ServiceName",
    "GroupName",
    "Source",
    "State",
    "Counts",
    "LatencyBuckets",
    "LatencySumMs",
    "Concurrency",
    "MaxConcurrency",
    "Gauges",
    "Properties",
)


def rows(reports: Iterable[tuple[BreakerReport, str]]) -> list[list[Any]]:
    """Insert rows of ``(report, source)`` pairs; ``source`` is ``push`` or ``pull``."""
    out: list[list[Any]] = []
    for report, source in reports:
        for s in report.samples:
            out.append(
                [
                    s.second,
                    report.cluster,
                    s.kind,
                    s.name,
                    report.instance,
                    report.service,
                    s.group,
                    source,
                    s.state,
                    dict(s.counts),
                    dict(s.latency),
                    s.latency_sum_ms,
                    min(s.concurrency, 2**32 - 1),
                    min(s.max_concurrency, 2**32 - 1),
                    dict(s.gauges),
                    {k: json.dumps(v) for k, v in s.properties.items()},
                ]
            )
    return out


def decode_properties(stored: dict[str, str]) -> dict[str, Any]:
    """Properties as reported (numbers, booleans, strings) from their stored JSON text."""
    decoded: dict[str, Any] = {}
    for key, text in stored.items():
        try:
            decoded[key] = json.loads(text)
        except ValueError:
            decoded[key] = text
    return decoded


#: Per instance × breaker sums over [start, end): what a window view merges.
WINDOW = """
SELECT Kind, Name, InstanceId,
    any(GroupName), any(ServiceName),
    sumMap(Counts), sumMap(LatencyBuckets), sum(LatencySumMs), max(MaxConcurrency),
    argMax(State, Timestamp), argMax(Concurrency, Timestamp), argMax(Gauges, Timestamp),
    argMax(Properties, Timestamp), toUnixTimestamp(max(Timestamp))
FROM tracehouse_breaker_stats FINAL
WHERE Cluster = {cluster:String}
  AND Timestamp >= toDateTime({start:UInt32}) AND Timestamp < toDateTime({end:UInt32})
  {filters}
GROUP BY Kind, Name, InstanceId
ORDER BY Kind, Name, InstanceId
"""

#: One breaker's series: sums per step, hosts reporting and hosts open.
HISTORY = """
SELECT toUnixTimestamp(toStartOfInterval(Timestamp, toIntervalSecond({step:UInt32}))) AS t,
    sumMap(Counts), sumMap(LatencyBuckets), sum(LatencySumMs), max(MaxConcurrency),
    uniqExact(InstanceId), uniqExactIf(InstanceId, State IN ('OPEN', 'FORCED_OPEN', 'HALF_OPEN'))
FROM tracehouse_breaker_stats FINAL
WHERE Cluster = {cluster:String} AND Kind = {kind:String} AND Name = {name:String}
  AND Timestamp >= toDateTime({start:UInt32}) AND Timestamp < toDateTime({end:UInt32})
GROUP BY t
ORDER BY t
"""

#: Clusters with stats since ``since``, with their breaker and instance counts.
CLUSTERS = """
SELECT Cluster, uniqExact(Name), uniqExact(InstanceId), toUnixTimestamp(max(Timestamp))
FROM tracehouse_breaker_stats
WHERE Timestamp >= toDateTime({since:UInt32})
GROUP BY Cluster
ORDER BY Cluster
"""


def window_query(instance: str | None, kind: str | None) -> tuple[str, dict[str, Any]]:
    """The WINDOW text with the optional filters, and their parameters."""
    filters: list[str] = []
    params: dict[str, Any] = {}
    if instance is not None:
        filters.append("AND InstanceId = {instance:String}")
        params["instance"] = instance
    if kind is not None:
        filters.append("AND Kind = {kind:String}")
        params["kind"] = kind
    return WINDOW.replace("{filters}", "\n  ".join(filters)), params


@dataclass(frozen=True, slots=True)
class InstanceWindow:
    """One instance's sums for one breaker over a window; ``sample.second`` is its newest second."""

    instance: str
    service: str
    sample: BreakerSample


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One step of a breaker's series, summed across instances."""

    t: int
    counts: dict[str, int]
    latency: dict[int, int]
    latency_sum_ms: float
    max_concurrency: int
    hosts: int
    open_hosts: int


def instance_window(row: Sequence[Any]) -> InstanceWindow:
    kind, name, instance, group, service, counts, latency, lsum, maxc, state, conc, gauges, props, newest = row
    sample = BreakerSample(
        kind=kind,
        name=name,
        group=group,
        second=int(newest),
        state=state,
        counts={k: int(v) for k, v in counts.items() if v},
        latency={int(k): int(v) for k, v in latency.items() if v},
        latency_sum_ms=float(lsum),
        concurrency=int(conc),
        max_concurrency=int(maxc),
        gauges={k: float(v) for k, v in gauges.items()},
        properties=decode_properties(props),
    )
    return InstanceWindow(instance, service, sample)


def history_point(row: Sequence[Any]) -> HistoryPoint:
    t, counts, latency, lsum, maxc, hosts, open_hosts = row
    return HistoryPoint(
        int(t),
        {k: int(v) for k, v in counts.items()},
        {int(k): int(v) for k, v in latency.items()},
        float(lsum),
        int(maxc),
        int(hosts),
        int(open_hosts),
    )
