"""The service page (`/service/<name>?lookback=1h`): rate, error % and p50/p95/p99 over time,
its operations with the same numbers, its upstream and downstream neighbours, and its breakers.
Reads the query API only; every number comes from the RED rollup or the dependency graph."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

import plotly.graph_objects as go
from dash import dcc, html

from tracehouse.dashboard.pages.traces import LOOKBACKS
from tracehouse.query.client import QueryClient

__all__ = ["page", "step_for", "window"]

#: Steps of the charts in seconds: about 60 points whatever the range, never under a minute (the rollup's grain).
_STEPS = ((3600, 60), (6 * 3600, 300), (24 * 3600, 1800), (7 * 86400, 3 * 3600))


def step_for(seconds: int) -> int:
    return next((step for limit, step in _STEPS if seconds <= limit), 12 * 3600)


def window(seconds: int, now: float) -> tuple[int, int]:
    """The whole minutes (epoch s, [start, end)) of the last `seconds` up to `now`, so that the
    per-minute rollup answers."""
    return int((now - seconds) // 60 * 60), int(-(-now // 60) * 60)


def _red_params(start: int, end: int, step: int, kind: str = "server") -> dict[str, str]:
    return {"start": str(start * 10**6), "end": str(end * 10**6), "step": f"{step}s", "spanKind": kind}


async def page(client: QueryClient, name: str, search: str) -> html.Div:
    form = parse_qs(search.lstrip("?"))
    lookback = form.get("lookback", ["1h"])[0]
    seconds = LOOKBACKS.get(lookback, 3600)
    now = time.time()
    start, end = window(seconds, now)
    step = step_for(seconds)
    # The charts start on a whole step: a first step cut by the window would read low.
    red, operations, graph, breakers = await asyncio.gather(
        client.red(name, _red_params(start // step * step, end, step)),
        client.operation_stats(name, {"start": str(start * 10**6), "end": str(end * 10**6)}),
        client.dependencies({"start": str(start * 10**6), "end": str(end * 10**6)}),
        client.breakers(name, "1m"),
    )
    traces_href = "/?" + urlencode({"service": name, "lookback": lookback})
    header = html.Div(
        [
            html.H2(name, id="service-name"),
            html.Span([dcc.Link("traces of this service", href=traces_href), " · ", _lookbacks(name, lookback)]),
        ]
    )
    if not red["points"] or not any(p["calls"] for p in red["points"]):
        empty = (
            f"No entry spans from {name} in the last {lookback}. Services send spans with "
            "`tracehouse-run --service-name NAME -- python app.py`, OTLP to port 4318/4317, or Zipkin to 9411."
        )
        return html.Div([header, html.P(empty, id="service-empty"), _neighbours(name, graph)])
    return html.Div(
        [
            header,
            html.Div(_charts(red), style={"display": "grid", "gridTemplateColumns": "repeat(3, 1fr)", "gap": "1em"}),
            html.H3("Operations"),
            _operations_table(operations),
            _neighbours(name, graph),
            _breakers(name, breakers),
        ]
    )


def _lookbacks(name: str, current: str) -> html.Span:
    links: list[Any] = []
    for key in LOOKBACKS:
        href = f"/service/{quote(name, safe='')}?lookback={key}"
        links.append(html.B(key) if key == current else dcc.Link(key, href=href))
        links.append(" ")
    return html.Span(links, id="service-lookback")


def _charts(red: dict[str, Any]) -> list[dcc.Graph]:
    points = red["points"]
    times = [datetime.fromtimestamp(int(p["startTimeUnixNano"]) / 1e9, UTC) for p in points]

    def chart(chart_id: str, title: str, series: list[tuple[str, list[float | None]]], unit: str) -> dcc.Graph:
        # Markers too: a minute with calls between minutes without (gaps) has no line to draw.
        lines = [
            go.Scatter(x=times, y=values, name=label, mode="lines+markers", marker={"size": 4})
            for label, values in series
        ]
        figure = go.Figure(lines)
        figure.update_layout(
            title=title, height=260, margin={"l": 40, "r": 10, "t": 40, "b": 30}, yaxis={"title": unit},
            legend={"orientation": "h"},
        )  # fmt: skip
        return dcc.Graph(id=chart_id, figure=figure, config={"displaylogo": False})

    def scaled(key: str, factor: float) -> list[float | None]:
        """A step without calls has no error rate nor latency (null): a gap, not a line at 0."""
        return [None if p[key] is None else p[key] * factor for p in points]

    return [
        chart("service-rate", "Rate", [("calls/s", [p["rate"] for p in points])], "calls/s"),
        chart("service-errors", "Errors", [("error %", scaled("errorRate", 100))], "%"),
        chart("service-latency", "Duration", [(q, scaled(f"{q}Nano", 1e-6)) for q in ("p50", "p95", "p99")], "ms"),
    ]


_OPERATION_COLUMNS = ("operation", "kind", "calls", "rate /s", "errors", "p50 ms", "p95 ms", "p99 ms")


def _operations_table(operations: list[dict[str, Any]]) -> html.Table:
    """Each operation's calls and calls/s (over the seconds its service has sent spans in the window:
    a service started five minutes ago reads its rate on the 1h view, not a twelfth of it)."""

    def row(op: dict[str, Any]) -> html.Tr:
        cells = [
            op["name"], op["kind"], op["calls"], f"{op['rate']:.3f}", f"{100 * op['errorRate']:.1f} %",
            *(f"{op[f'{q}Nano'] / 1e6:.2f}" for q in ("p50", "p95", "p99")),
        ]  # fmt: skip
        return html.Tr([html.Td(c) for c in cells])

    head = html.Thead(html.Tr([html.Th(c, style={"textAlign": "left"}) for c in _OPERATION_COLUMNS]))
    return html.Table([head, html.Tbody([row(op) for op in operations])], id="service-operations")


def _neighbours(name: str, graph: dict[str, Any]) -> html.Div:
    kinds = {node["id"]: node["kind"] for node in graph["nodes"]}
    upstream = [e for e in graph["edges"] if e["child"] == name]
    downstream = [e for e in graph["edges"] if e["parent"] == name]

    def rows(edges: list[dict[str, Any]], other: str) -> html.Ul:
        if not edges:
            return html.Ul([html.Li("none")])
        items = []
        for edge in sorted(edges, key=lambda e: -int(e["calls"])):
            peer = edge[other]
            label = dcc.Link(peer, href=f"/service/{quote(peer, safe='')}") if kinds.get(peer) == "service" else peer
            numbers = (
                f" — {edge['calls']} calls, {100 * edge['errorRate']:.1f} % errors, p99 {edge['p99Nano'] / 1e6:.1f} ms"
            )
            items.append(html.Li([label, f" ({kinds.get(peer, 'peer')})", numbers]))
        return html.Ul(items)

    return html.Div(
        [
            html.Div([html.H3("Upstream (calls it)"), rows(upstream, "parent")], id="service-upstream"),
            html.Div([html.H3("Downstream (it calls)"), rows(downstream, "child")], id="service-downstream"),
        ],
        style={"display": "grid", "gridTemplateColumns": "1fr 1fr", "gap": "1em"},
    )


def _breakers(name: str, breakers: Any) -> html.Div:
    found = breakers["breakers"]
    if not found:
        return html.Div()
    items = [
        html.Li(f"{b['name']}: {'open' if b['open'] else ', '.join(sorted(b['states']))}, "
                f"{b['errorPercentage']:.1f} % errors, {b['rate']['cluster']:.1f}/s")
        for b in found
    ]  # fmt: skip
    link = dcc.Link("breaker wall", href=f"/breakers?cluster={quote(name, safe='')}")
    return html.Div([html.H3(["Breakers (", link, ")"]), html.Ul(items)], id="service-breakers")
