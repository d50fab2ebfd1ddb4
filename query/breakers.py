"""Breaker health over the query API: ``/api/v1/breakers`` (cluster window), its history, and
``/turbine.stream`` in the exact Hystrix format for the original Hystrix Dashboard.

Cluster numbers are computed from summed per-second deltas: error % is Σ errors / Σ requests and
percentiles come from the merged histogram — never averages of per-host figures (Turbine's error).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from tracehouse.instrumentation.breakers.histogram import percentiles_ms
from tracehouse.instrumentation.breakers.hystrix import (
    WindowView,
    command_event,
    delete_events,
    thread_pool_event,
    window_view,
)
from tracehouse.query.errors import BadRequest
from tracehouse.query.guard import guarded
from tracehouse.query.params import parse_duration, time_range
from tracehouse.storage.breakers import HistoryPoint, InstanceWindow
from tracehouse.storage.seams import BreakerStore

__all__ = ["breaker_router", "group_windows"]

MAX_WINDOW_S = 3600
_REQUESTS = ("success", "failure", "timeout", "thread_pool_rejected", "semaphore_rejected")
TICK_S = 0.5
#: Reports of second s are stored about 0.3 s after it ends (the reporter sends 0.05 s into the next
#: second, the collector gathers them for 0.2 s, then inserts): a window ends at the last second
#: whose reports have had this long to arrive, so it never shows a second still filling up.
REPORT_ARRIVAL_S = 0.5


def _window_seconds(text: str) -> int:
    seconds = parse_duration("window", text) // 10**9
    if not 1 <= seconds <= MAX_WINDOW_S:
        raise BadRequest(f"window: {text[:40]!r} must be between 1s and {MAX_WINDOW_S // 60}m")
    return int(seconds)


def window_bounds(now: float, window_s: int) -> tuple[int, int]:
    """The ``[start, end)`` epoch seconds of a window of ``window_s`` seconds read at wall time ``now``:
    its last second is the newest one that ended at least :data:`REPORT_ARRIVAL_S` ago."""
    end = int(now - REPORT_ARRIVAL_S)
    return end - window_s, end


def group_windows(rows: list[InstanceWindow], window_s: int) -> list[tuple[WindowView, list[InstanceWindow]]]:
    """Merge the per-instance rows of each (kind, name) into one cluster view."""
    grouped: dict[tuple[str, str], list[InstanceWindow]] = {}
    for row in rows:
        grouped.setdefault((row.sample.kind, row.sample.name), []).append(row)
    views = []
    for (kind, _name), members in grouped.items():
        view = window_view({m.instance: [m.sample] for m in members}, window_s, kind)
        views.append((view, members))
    return views


def _latency_json(latency: dict[int, int] | Any, latency_sum_ms: float) -> dict[str, float]:
    calls = sum(latency.values())
    found: dict[str, float] = {"mean": 0.0 if calls == 0 else round(latency_sum_ms / calls, 3)}
    found.update({f"p{key}": round(value, 3) for key, value in percentiles_ms(latency).items()})
    return found


def _command_json(cluster: str, view: WindowView, members: list[InstanceWindow]) -> dict[str, Any]:
    requests = view.requests
    return {
        "cluster": cluster,
        "name": view.name,
        "group": view.group,
        "hosts": view.hosts,
        "requests": requests,
        "errors": view.errors,
        "errorPercentage": round(view.error_percentage, 2),
        "rate": {
            "cluster": round(requests / view.window_seconds, 3),
            "host": round(requests / view.window_seconds / max(1, view.hosts), 3),
        },
        "counts": dict(view.counts),
        "latency": _latency_json(dict(view.latency), view.latency_sum_ms),
        "open": view.is_open,
        "states": dict(view.states),
        "concurrency": view.concurrency,
        "maxConcurrency": view.max_concurrency,
        "properties": dict(view.properties),
        "instances": [_instance_json(m) for m in members],
    }


def _instance_json(member: InstanceWindow) -> dict[str, Any]:
    single = window_view({member.instance: [member.sample]}, 1, member.sample.kind)
    return {
        "instance": member.instance,
        "service": member.service,
        "state": member.sample.state,
        "requests": single.requests,
        "errors": single.errors,
        "errorPercentage": round(single.error_percentage, 2),
        "lastSecond": member.sample.second,
    }


def _pool_json(cluster: str, view: WindowView) -> dict[str, Any]:
    executed = view.counts.get("success", 0)
    return {
        "cluster": cluster,
        "name": view.name,
        "hosts": view.hosts,
        "executed": executed,
        "rejected": view.counts.get("thread_pool_rejected", 0),
        "rate": {
            "cluster": round(executed / view.window_seconds, 3),
            "host": round(executed / view.window_seconds / max(1, view.hosts), 3),
        },
        "maxActive": view.max_concurrency,
        "gauges": dict(view.gauges),
    }


def _point_json(point: HistoryPoint, step_s: int) -> dict[str, Any]:
    requests = sum(point.counts.get(k, 0) for k in _REQUESTS)
    errors = requests - point.counts.get("success", 0)
    return {
        "time": point.t * 1_000_000,
        "requests": requests,
        "errors": errors,
        "errorPercentage": 0.0 if requests == 0 else round(100.0 * errors / requests, 2),
        "rate": round(requests / step_s, 3),
        "counts": point.counts,
        "latency": _latency_json(point.latency, point.latency_sum_ms),
        "maxConcurrency": point.max_concurrency,
        "hosts": point.hosts,
        "openHosts": point.open_hosts,
    }


def breaker_router(store: BreakerStore, clusters: Any) -> APIRouter:
    """The breaker routes over ``store``; ``clusters(since_s)`` lists (cluster, …) rows."""
    router = APIRouter()

    def cluster_names(since: int) -> list[str]:
        return [row[0] for row in guarded(lambda: clusters(since))]

    @router.get("/api/v1/breakers", tags=["breakers"])
    def breakers(
        cluster: Annotated[str | None, Query(description="a service name or configured group; default all")] = None,
        window: Annotated[str, Query(description="e.g. 10s, 1m")] = "10s",
        instance: Annotated[str | None, Query(description="only this instance (host:port or host:pid)")] = None,
    ) -> dict[str, Any]:
        """Every breaker and thread pool of a cluster over the last ``window``, summed across its
        instances: true error % (Σ errors / Σ requests), merged percentiles (ms), host count,
        states across hosts, cluster and per-host rates."""
        window_s = _window_seconds(window)
        start, end = window_bounds(time.time(), window_s)
        names = [cluster] if cluster is not None else cluster_names(start)
        commands: list[dict[str, Any]] = []
        pools: list[dict[str, Any]] = []

        def window_rows(name: str) -> list[InstanceWindow]:
            return guarded(lambda: store.breaker_window(name, start, end, instance))

        for name in names:
            for view, members in group_windows(window_rows(name), window_s):
                if view.kind == "threadpool":
                    pools.append(_pool_json(name, view))
                else:
                    commands.append(_command_json(name, view, members))
        return {"window": window_s, "end": end * 1_000_000, "breakers": commands, "threadPools": pools}

    @router.get("/api/v1/breakers/clusters", tags=["breakers"])
    def breaker_clusters(
        window: Annotated[str, Query(description="clusters that reported within this, e.g. 1h")] = "1h",
    ) -> dict[str, Any]:
        """Clusters with breaker stats, with their breaker and instance counts."""
        window_s = int(parse_duration("window", window) // 10**9)
        rows = guarded(lambda: clusters(int(time.time()) - window_s))
        return {
            "clusters": [{"cluster": c, "breakers": b, "instances": i, "lastSecond": last} for c, b, i, last in rows]
        }

    @router.get("/api/v1/breakers/{name:path}/history", tags=["breakers"])
    def history(
        name: str,
        cluster: str,
        kind: Annotated[str, Query(description="command or threadpool")] = "command",
        start: Annotated[str | None, Query(description="epoch µs or ISO 8601; default end - 1h")] = None,
        end: Annotated[str | None, Query(description="epoch µs or ISO 8601; default now")] = None,
        step: Annotated[str, Query(description="e.g. 10s, 1m")] = "10s",
    ) -> dict[str, Any]:
        """One breaker's stored history per step, summed across instances (Hystrix kept none)."""
        if kind not in ("command", "threadpool"):
            raise BadRequest("kind: must be command or threadpool")
        start_ns, end_ns = time_range(start, end)
        step_s = max(1, int(parse_duration("step", step) // 10**9))
        if (end_ns - start_ns) // 10**9 // step_s > 10_000:
            raise BadRequest("step: too many points; choose a longer step or a shorter range")
        start_s, end_s = start_ns // 10**9, -(-end_ns // 10**9)
        points = guarded(lambda: store.breaker_history(cluster, kind, name, start_s, end_s, step_s))
        return {"cluster": cluster, "name": name, "kind": kind, "stepSeconds": step_s,
                "points": [_point_json(p, step_s) for p in points]}  # fmt: skip

    @router.get("/turbine.stream", tags=["breakers"], response_class=StreamingResponse)
    async def turbine_stream(
        request: Request,
        cluster: Annotated[str | None, Query(description="the cluster to stream")] = None,
        instance: Annotated[str | None, Query(description="one instance only (passthrough)")] = None,
        window: Annotated[str, Query(description="rolling window, default 10s")] = "10s",
    ) -> Response:
        """Hystrix event stream (``HystrixCommand``/``HystrixThreadPool`` every 500 ms) of a cluster,
        for the original Hystrix Dashboard; ``instance`` streams one instance only."""
        window_s = _window_seconds(window)
        if not cluster:
            known = await asyncio.to_thread(cluster_names, int(time.time()) - 3600)
            return PlainTextResponse(
                f"cluster is required: /turbine.stream?cluster=NAME (known: {', '.join(known) or 'none yet'})\n", 400
            )
        frames = _frames(store, cluster, instance, window_s, request)
        return StreamingResponse(frames, media_type="text/event-stream;charset=UTF-8", headers=_NO_CACHE)

    return router


_NO_CACHE = {"Cache-Control": "no-cache, no-store, max-age=0, must-revalidate", "Pragma": "no-cache"}


async def _frames(
    store: BreakerStore, cluster: str, instance: str | None, window_s: int, request: Request
) -> AsyncIterator[bytes]:
    shown: set[tuple[str, str]] = set()
    while not await request.is_disconnected():
        start, end = window_bounds(time.time(), window_s)
        try:
            rows = await asyncio.to_thread(store.breaker_window, cluster, start, end, instance)
        except Exception:  # the store is down: keep the stream open, the dashboard shows stale tiles
            yield b"ping: \n\n"
        else:
            frame, shown = _frame(rows, window_s, shown)
            yield frame
        await asyncio.sleep(TICK_S)


def _frame(
    rows: list[InstanceWindow], window_s: int, shown: set[tuple[str, str]]
) -> tuple[bytes, set[tuple[str, str]]]:
    """One tick of the stream, and the (kind, name) pairs it shows. What ``shown`` (the previous
    tick's) had and this one lacks gets its delete events, once: the dashboard keeps a tile until told."""
    now_ms = int(time.time() * 1000)
    views = [view for view, _ in group_windows(rows, window_s)]
    events = [thread_pool_event(v, now_ms) if v.kind == "threadpool" else command_event(v, now_ms) for v in views]
    showing = {(v.kind, v.name) for v in views}
    events += [e for kind, name in sorted(shown - showing) for e in delete_events(kind, name)]
    if not events:
        return b"ping: \n\n", showing
    return b"".join(b"data: " + json.dumps(e, separators=(",", ":")).encode() + b"\n\n" for e in events), showing
