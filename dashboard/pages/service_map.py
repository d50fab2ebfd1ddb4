"""The service map: services, databases, queues and peers from the dependency API, laid out
by dash-cytoscape; node colour by error rate of calls into it, edge labels with calls and
error %. Clicking a service opens its service page, an edge the traces of its calls."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

import dash_cytoscape as cyto
from dash import Dash, Input, Output, State, html
from dash.exceptions import PreventUpdate

from tracehouse.dashboard.empty import send_spans
from tracehouse.dashboard.pages.service import window
from tracehouse.dashboard.pages.traces import LOOKBACKS
from tracehouse.query.client import QueryClient

_SHAPES = {"service": "round-rectangle", "database": "barrel", "queue": "rhomboid", "peer": "ellipse"}
STYLESHEET = [
    {"selector": "node", "style": {"label": "data(label)", "background-color": "data(colour)",
                                   "shape": "data(shape)", "text-valign": "bottom", "font-size": 11,
                                   "width": "data(size)", "height": "data(size)",
                                   "border-color": "data(border)", "border-width": "data(borderWidth)"}},
    {"selector": "edge", "style": {"label": "data(label)", "curve-style": "bezier", "target-arrow-shape": "triangle",
                                   "font-size": 9, "width": 2, "line-color": "data(colour)",
                                   "target-arrow-color": "data(colour)"}},
]  # fmt: skip


def human_ns(ns: float) -> str:
    return f"{ns / 1e6:.1f} ms" if ns >= 1e6 else f"{ns / 1e3:.0f} µs"


def colour(error_rate: float) -> str:
    return "#e15759" if error_rate >= 0.05 else "#f28e2b" if error_rate > 0 else "#59a14f"


def elements(graph: dict[str, Any], open_breakers: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """Nodes sized by the calls into them and coloured by their error rate, with a badge (a red border
    and "N open" in the label) when breakers of that service are open; edges labelled with their calls/s
    (the API's `rate`: over the seconds both services have sent spans in the window), error % and p99."""
    errors: dict[str, tuple[int, int]] = {}
    for edge in graph["edges"]:
        calls, failed = errors.get(edge["child"], (0, 0))
        errors[edge["child"]] = (calls + edge["calls"], failed + edge["errors"])
    busiest = max((calls for calls, _ in errors.values()), default=0)
    nodes = [
        _node(node, *errors.get(node["id"], (0, 0)), busiest, (open_breakers or {}).get(node["id"], 0))
        for node in graph["nodes"]
    ]
    edges = [{"data": _edge_data(e, graph["nodes"])} for e in graph["edges"]]
    return nodes + edges


def _edge_data(edge: dict[str, Any], nodes: list[dict[str, str]]) -> dict[str, Any]:
    """An edge between node ids, with the names and kinds of its ends (a queue named like a service
    has an id of its own, ``orders (queue)``), which the traces of its calls are searched by."""
    by_id = {node["id"]: node for node in nodes}

    def end(node_id: str, kind: str | None) -> tuple[str, str]:
        node = by_id.get(node_id, {})
        return node.get("name", node_id), kind or node.get("kind", "peer")

    (source, source_kind), (target, kind) = (
        end(edge["parent"], edge.get("parentKind")),
        end(edge["child"], edge.get("childKind")),
    )
    return {"source": edge["parent"], "target": edge["child"], "sourceName": source, "sourceKind": source_kind,
            "targetName": target, "kind": kind, "colour": colour(edge["errorRate"]),
            "label": _edge_label(edge), "calls": edge["calls"]}  # fmt: skip


def _edge_label(edge: dict[str, Any]) -> str:
    return f"{_rate(edge['calls'], edge['rate'])}, {100 * edge['errorRate']:.1f}% err, p99 {human_ns(edge['p99Nano'])}"


def _rate(calls: int, per_second: float) -> str:
    if per_second >= 0.01 or not calls:
        return f"{per_second:.3g} calls/s"
    return f"{calls} calls/{max(1, round(calls / per_second / 60))} min"


def _node(node: dict[str, str], calls: int, failed: int, busiest: int, open_breakers: int) -> dict[str, Any]:
    """A node, coloured by the error rate of the calls into it (blue when nothing calls it)."""
    label = node["id"] + (f"  ⚠ {open_breakers} open" if open_breakers else "")
    data = {"id": node["id"], "label": label, "kind": node["kind"], "shape": _SHAPES.get(node["kind"], "ellipse")}
    size = 30 + (40 * math.sqrt(calls / busiest) if busiest else 0)  # area follows the calls into it
    border = {"border": "#e15759", "borderWidth": 4} if open_breakers else {"border": "#ffffff", "borderWidth": 0}
    return {"data": {**data, **border, "size": size, "colour": colour(failed / calls) if calls else "#4e79a7"}}


async def page(client: QueryClient, search: str) -> html.Div:
    form = parse_qs(search.lstrip("?"))
    seconds = LOOKBACKS.get(form.get("lookback", ["1h"])[0], 3600)
    start, _ = window(seconds, time.time())
    graph, breakers = await asyncio.gather(
        client.dependencies({"start": str(start * 10**6)}), client.breakers(None, "1m")
    )
    open_breakers: dict[str, int] = {}
    for breaker in breakers["breakers"]:
        if breaker["open"]:
            open_breakers[breaker["cluster"]] = open_breakers.get(breaker["cluster"], 0) + 1
    if not graph["nodes"]:
        return html.Div([html.H2("Service map"), send_spans("map-empty")])
    return html.Div(
        [
            html.H2("Service map"),
            cyto.Cytoscape(
                id="service-map",
                elements=elements(graph, open_breakers),
                layout={"name": "breadthfirst", "directed": True, "spacingFactor": 1.3},
                stylesheet=STYLESHEET,
                style={"width": "100%", "height": "560px"},
            ),
        ]
    )


def edge_traces(edge: dict[str, Any], search: str) -> str:
    """The traces page of an edge's calls over the map's lookback: spans of the callee service whose
    parent is the caller's; the caller's client or producer spans naming a database, queue or peer;
    a queue's consumer's spans naming the queue."""
    lookback = parse_qs(search.lstrip("?")).get("lookback", ["1h"])[0]
    source, target = edge.get("sourceName", edge["source"]), edge.get("targetName", edge["target"])
    if edge.get("kind") != "service":  # a database, queue or peer: the caller's spans naming it
        fields = {"service": source, "peer": target}
    elif edge.get("sourceKind", "service") == "service":  # the callee's spans whose parent is the caller's
        fields = {"service": target, "parentService": source}
    else:  # a queue's consumer: its consumer spans naming the queue
        fields = {"service": target, "peer": source}
    return "/?" + urlencode({**fields, "lookback": lookback})


def register(app: Dash) -> None:
    @app.callback(
        Output("url", "href", allow_duplicate=True), Input("service-map", "tapNodeData"), prevent_initial_call=True
    )
    async def open_service(node: dict[str, Any] | None) -> str:
        if not node or node.get("kind") != "service":
            raise PreventUpdate
        return f"/service/{quote(node['id'], safe='')}?lookback=1h"

    @app.callback(
        Output("url", "href", allow_duplicate=True),
        Input("service-map", "tapEdgeData"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    async def open_edge(edge: dict[str, Any] | None, search: str | None) -> str:
        if not edge:
            raise PreventUpdate
        return edge_traces(edge, search or "")
