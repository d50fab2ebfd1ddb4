"""Hystrix-dashboard tiles for the breaker wall: a breaker's circle (size = request rate per host,
colour = error %), sparkline, coloured counters, rates, circuit state and latency table; a thread
pool's tile; the wall's sort orders. Pure functions of the breakers API's JSON; no I/O. Tiles are
HTML written here (every text and value escaped), patched into the page by the wall's script:
built as Dash components, 200 tiles took the server ~0.25 s a second and the browser longer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import pairwise
from typing import Any

from tracehouse.dashboard import sparkline
from tracehouse.dashboard.html_string import tag
from tracehouse.dashboard.html_string import text as html_text
from tracehouse.query.client import BreakerJson, ThreadPoolJson

__all__ = [
    "SORTS",
    "STYLE_SHEET",
    "breaker_tile",
    "circuit_parts",
    "health_colour",
    "pool_tile",
    "radius",
    "sort_breakers",
]

#: Hystrix's colour scale: d3 linear over error % 10 → 25 → 40 → 50, clamped at both ends.
_STOPS = ((10.0, (0, 128, 0)), (25.0, (255, 204, 0)), (40.0, (255, 153, 0)), (50.0, (255, 0, 0)))
RED = "#ff0000"
_MAX_RATE, _MIN_R, _MAX_R = 400.0, 5.0, 125.0
#: The counter columns as the Hystrix dashboard lays them out and colours them (its CSS names):
#: (css key, label, tooltip, colour).
_COUNTERS = (
    (
        ("success", "Success", "Successful Request Count", "green"),
        ("short-circuited", "Short-circuited", "Short-circuited Request Count", "blue"),
        ("bad-request", "Bad request", "Bad Request Count", "lightseagreen"),
    ),
    (
        ("timeout", "Timeout", "Timed-out Request Count", "#ff9900"),
        ("rejected", "Rejected", "Thread-pool and Semaphore Rejected Request Count", "purple"),
        ("failure", "Failure", "Failure Request Count", "red"),
    ),
)
_ERROR_TIP = "Error Percentage [Timed-out + Rejected + Failure / Total]"
#: Circuit states, most alarming first, with the label and colour the tile gives them.
_STATES = {
    "FORCED_OPEN": ("Forced Open", "red"),
    "OPEN": ("Open", "red"),
    "HALF_OPEN": ("Half Open", "#ff9900"),
    "CLOSED": ("Closed", "green"),
    "FORCED_CLOSED": ("Forced Closed", "green"),
    "METRICS_ONLY": ("Metrics Only", "grey"),
    "DISABLED": ("Disabled", "grey"),
}
_ORDER = list(_STATES)

#: The tiles' fixed look, as one style sheet in the page's head: each tile then carries class names
#: instead of inline styles, which on a 200-breaker wall was most of each update. Tiles are of a fixed
#: size, so each is laid out and painted on its own (``contain``), and not at all while off screen
#: (``content-visibility``): a tick that changes every tile restyles only those in view.
STYLE_SHEET = """
.breaker-tile, .pool-tile { position: relative; width: 262px; height: 180px; overflow: hidden;
  border: 1px solid #ddd; font-size: 12px; color: #333; background: white; }
.pool-tile { height: 140px; }
.breaker-tile, .pool-tile { contain: strict; content-visibility: auto; contain-intrinsic-size: 262px 180px; }
.pool-tile { contain-intrinsic-size: 262px 140px; }
a.tile-link { color: inherit; text-decoration: none; }
.tile-layer { position: absolute; inset: 0; }
.tile-body { position: relative; display: flex; flex-direction: column; height: 100%; box-sizing: border-box;
  padding: 2px 6px 4px; }
.tile-name { text-align: right; font-weight: 600; font-size: 13px; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; }
.sparkline { position: absolute; left: 0; top: 24px; width: 100%; height: 90px; opacity: 0.8; }
.breaker-circle { position: absolute; border-radius: 50%; opacity: 0.75; }
.counters { display: flex; gap: 0.8em; justify-content: flex-end; margin: 4px 0; }
.counter-column { text-align: right; min-width: 3em; }
.error-percentage { font-size: 16px; font-weight: 600; }
.rate-host, .rate-cluster, .circuit { text-align: right; }
.tile-table { margin-top: auto; width: 100%; border-top: 1px solid #ccc; border-collapse: collapse; }
.tile-table .head { color: #777; padding-right: 0.4em; }
.tile-table .data { text-align: right; padding-right: 0.8em; }
""" + "".join(f".count-{key} {{ color: {colour}; }}\n" for column in _COUNTERS for key, _, _, colour in column)


def health_colour(error_percentage: float) -> str:
    """The circle's colour for an error %: green up to 10, through #FFCC00 (25) and #FF9900 (40)
    to red from 50."""
    if error_percentage <= _STOPS[0][0]:
        return _hex(_STOPS[0][1])
    for (x0, c0), (x1, c1) in pairwise(_STOPS):
        if error_percentage <= x1:
            f = (error_percentage - x0) / (x1 - x0)
            # d3 rounds halves up (Math.round), Python's round() to even
            return _hex(tuple(math.floor(a + (b - a) * f + 0.5) for a, b in zip(c0, c1, strict=True)))
    return _hex(_STOPS[-1][1])


def _hex(rgb: tuple[int, ...]) -> str:
    return "#" + "".join(f"{c:02x}" for c in rgb)


def radius(rate_per_host: float) -> float:
    """Hystrix's √ scale: 0–400 requests/s per host → 5–125 px (clamped)."""
    return _MIN_R + (_MAX_R - _MIN_R) * math.sqrt(min(max(rate_per_host, 0.0), _MAX_RATE) / _MAX_RATE)


def circuit_parts(states: dict[str, int]) -> list[tuple[str, str]]:
    """(text, colour) pieces of the circuit line: one state's label when every host agrees,
    else ``Open N / Closed M`` (most alarming first)."""
    present = sorted((s for s, n in states.items() if n), key=_state_rank)
    labels = {s: _STATES.get(s, (s.replace("_", " ").title(), "grey")) for s in present}
    if len(present) <= 1:
        return [labels[present[0]]] if present else [("Unknown", "grey")]
    parts: list[tuple[str, str]] = []
    for state in present:
        text, colour = labels[state]
        parts += [(" / ", "#333")] if parts else []
        parts.append((f"{text} {states[state]}", colour))
    return parts


def _state_rank(state: str) -> tuple[int, str]:
    return (_ORDER.index(state) if state in _STATES else len(_ORDER), state)


def _ms(value: float) -> str:
    return f"{value:,.0f}ms" if value >= 10 else f"{value:.1f}ms"


def _latency(key: str) -> Callable[[BreakerJson], Any]:
    return lambda b: -b["latency"].get(key, 0.0)


#: URL value → (label, key); slowest, busiest and most failing first, as Hystrix sorted.
SORTS: dict[str, tuple[str, Callable[[BreakerJson], Any]]] = {
    "error-volume": ("Error then volume", lambda b: (-b["errorPercentage"], -b["rate"]["cluster"])),
    "alpha": ("Alphabetical", lambda b: (b["name"].lower(), b["cluster"])),
    "volume": ("Volume", lambda b: -b["rate"]["cluster"]),
    "error": ("Error", lambda b: -b["errorPercentage"]),
    "mean": ("Mean", _latency("mean")),
    "median": ("Median", _latency("p50")),
    "p90": ("90", _latency("p90")),
    "p99": ("99", _latency("p99")),
    "p99.5": ("99.5", _latency("p99.5")),
}


def sort_breakers(breakers: list[BreakerJson], sort: str) -> list[BreakerJson]:
    """The wall's order; ties (and unknown sorts) fall back to name, then cluster."""
    key = SORTS.get(sort, SORTS["error-volume"])[1]
    return sorted(sorted(breakers, key=lambda b: (b["name"], b["cluster"])), key=key)


def breaker_tile(b: BreakerJson, series: sparkline.Series, end_s: int, href: str, show_cluster: bool) -> str:
    """One breaker's tile as HTML; an open circuit is drawn red whatever its error % (Hystrix kept
    it green once the failures had rolled out of the window while every call was short-circuited)."""
    colour = RED if b["open"] else health_colour(b["errorPercentage"])
    chart = _circle(radius(b["rate"]["host"]), colour) + (sparkline.svg(series, end_s) or "")
    circuit = "".join(tag("span", {"style": f"color: {c}"}, html_text(t)) for t, c in circuit_parts(b["states"]))
    body = (
        _title(b["name"], b["cluster"] if show_cluster else None)
        + _counters(b)
        + _line("rate-host", f"Host: {b['rate']['host']:,.1f}/s")
        + _line("rate-cluster", f"Cluster: {b['rate']['cluster']:,.1f}/s")
        + tag("div", {"class": "circuit"}, "Circuit ", tag("span", {"class": "circuit-state"}, circuit))
        + _latency_table(b)
    )
    present = [s for s, n in b["states"].items() if n]
    attributes = {
        "class": "breaker-tile",
        "data-breaker": b["name"],
        "data-cluster": b["cluster"],
        "data-state": present[0] if len(present) == 1 else "MIXED",
        "data-open": "true" if b["open"] else "false",
    }
    layers = tag("div", {"class": "tile-layer"}, chart) + tag("div", {"class": "tile-body"}, body)
    tile = tag("div", attributes, layers)
    return _link(tile, href, f"{b['name']} ({b['cluster']}): history")


def _link(tile: str, href: str, title: str) -> str:
    """An in-app link (the wall's script navigates as ``dcc.Link`` does)."""
    return tag("a", {"class": "tile-link", "href": href, "title": title}, tile)


def _circle(r: float, colour: str) -> str:
    style = (
        f"left: calc(28% - {r:.1f}px); top: {70 - r:.1f}px; width: {2 * r:.1f}px; height: {2 * r:.1f}px; "
        f"background: {colour}"
    )
    return tag("div", {"class": "breaker-circle", "data-colour": colour, "style": style})


def _title(name: str, cluster: str | None) -> str:
    text = name if cluster is None else f"{name} · {cluster}"
    return tag("div", {"class": "tile-name", "title": text}, html_text(text))


def _line(kind: str, text: str) -> str:
    return tag("div", {"class": kind}, html_text(text))


def _counters(b: BreakerJson) -> str:
    counts = b["counts"]
    values = {
        **counts,
        "short-circuited": counts.get("short_circuited", 0),
        "bad-request": counts.get("bad_request", 0),
        "rejected": counts.get("thread_pool_rejected", 0) + counts.get("semaphore_rejected", 0),
    }
    columns = [
        tag("div", {"class": "counter-column"}, *(_count(values.get(c[0], 0), *c) for c in column))
        for column in _COUNTERS
    ]
    error = tag("div", {"class": "error-percentage", "title": _ERROR_TIP}, f"{b['errorPercentage']:.1f} %")
    return tag("div", {"class": "counters"}, *columns, error)


def _count(value: int, key: str, label: str, tip: str, _colour: str) -> str:
    return tag("div", {"class": f"count count-{key}", "title": f"{label}: {tip}"}, f"{value:,}")


def _latency_table(b: BreakerJson) -> str:
    latency = b["latency"]
    rows = (
        ("Hosts", str(b["hosts"]), "90th", _ms(latency.get("p90", 0.0))),
        ("Median", _ms(latency.get("p50", 0.0)), "99th", _ms(latency.get("p99", 0.0))),
        ("Mean", _ms(latency.get("mean", 0.0)), "99.5th", _ms(latency.get("p99.5", 0.0))),
    )
    return _table(rows, "latency")


def _table(rows: tuple[tuple[str, str, str, str], ...], kind: str) -> str:
    """A two-pair table; each value cell has class ``cell-<heading>`` (``cell-99_5th``) for tests."""

    def cells(h1: str, v1: str, h2: str, v2: str) -> str:
        return (
            tag("td", {"class": "head"}, h1)
            + tag("td", {"class": f"data {_cell(h1)}"}, html_text(v1))
            + tag("td", {"class": "head"}, h2)
            + tag("td", {"class": f"data {_cell(h2)}"}, html_text(v2))
        )

    body = tag("tbody", {}, *(tag("tr", {}, cells(*row)) for row in rows))
    return tag("table", {"class": f"tile-table {kind}"}, body)


def _cell(heading: str) -> str:
    return "cell-" + heading.lower().replace(" ", "-").replace(".", "_")


def pool_tile(p: ThreadPoolJson, href: str, show_cluster: bool) -> str:
    """A thread pool's tile as HTML: size by executions/s per host, colour by queue size per host.
    Gauges are summed across hosts; the queue size limit is a setting, shown per host."""
    g, hosts = p["gauges"], max(1, p["hosts"])
    colour = health_colour(g.get("currentQueueSize", 0.0) / hosts)
    limit = g.get("propertyValue_queueSizeRejectionThreshold", 0.0) / hosts
    rows = (
        ("Active", f"{g.get('currentActiveCount', 0):,.0f}", "Max Active", f"{p['maxActive']:,}"),
        ("Queued", f"{g.get('currentQueueSize', 0):,.0f}", "Executions", f"{p['executed']:,}"),
        ("Pool Size", f"{g.get('currentPoolSize', 0):,.0f}", "Queue Size", f"{limit:,.0f}"),
    )
    body = (
        _title(p["name"], p["cluster"] if show_cluster else None)
        + _line("rate-host", f"Host: {p['rate']['host']:,.1f}/s")
        + _line("rate-cluster", f"Cluster: {p['rate']['cluster']:,.1f}/s")
        + _table(rows, "pool-gauges")
    )
    layers = tag("div", {"class": "tile-layer"}, _circle(radius(p["rate"]["host"]), colour))
    attributes = {"class": "pool-tile", "data-pool": p["name"], "data-cluster": p["cluster"]}
    tile = tag("div", attributes, layers, tag("div", {"class": "tile-body"}, body))
    return _link(tile, href, f"{p['name']} ({p['cluster']}): history")
