"""The trace search page: a form whose state lives in the URL's query string, a scatter of
duration over time (click a dot to open the trace) and the results table, newest first."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

import plotly.graph_objects as go
from dash import Dash, Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from tracehouse.dashboard.empty import send_spans
from tracehouse.dashboard.pages.trace import count
from tracehouse.query.client import QueryClient, SummaryJson

LOOKBACKS = {"15m": 15 * 60, "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400}
HEADINGS = ("start", "trace", "duration", "spans", "errors", "services")


def api_params(form: dict[str, list[str]]) -> dict[str, str | list[str]]:
    """The page's query string -> the search API's parameters."""
    params: dict[str, str | list[str]] = {}
    for name in ("service", "operation", "minDuration", "maxDuration", "limit"):
        if form.get(name) and form[name][0]:
            params[name] = form[name][0]
    if form.get("attr"):
        params["attr"] = [a for a in form["attr"] if a]
    if form.get("error", [""])[0] == "true":
        params["error"] = "true"
    seconds = LOOKBACKS.get(form.get("lookback", ["1h"])[0], 3600)
    params["start"] = str(int((datetime.now(UTC).timestamp() - seconds) * 1e6))
    return params


async def page(client: QueryClient, search: str) -> html.Div:
    form = parse_qs(search.lstrip("?"))
    services = await client.services()
    service = form.get("service", [""])[0]
    operations = [op["name"] for op in await client.operations(service)] if service else []
    traces = await client.find_traces(api_params(form))  # no query string: the last hour
    if not services:
        return html.Div([_form(form, services, operations), send_spans("search-empty")])
    return html.Div([_form(form, services, operations), *_results(traces)])


def _form(form: dict[str, list[str]], services: list[str], operations: list[str]) -> html.Div:
    def first(name: str, default: str = "") -> str:
        return form.get(name, [default])[0]

    return html.Div(
        [
            dcc.Dropdown(services, first("service") or None, id="search-service", placeholder="service"),
            dcc.Dropdown(sorted(set(operations)), first("operation") or None, id="search-operation",
                         placeholder="operation"),
            dcc.Textarea(id="search-attr", value="\n".join(form.get("attr", [])),
                         placeholder="attributes, one per line: key=value, key!=value, key=~regex, key, !key"),
            dcc.Input(id="search-min", value=first("minDuration"), placeholder="min duration (250ms)"),
            dcc.Input(id="search-max", value=first("maxDuration"), placeholder="max duration (1.5s)"),
            dcc.Dropdown(list(LOOKBACKS), first("lookback", "1h"), id="search-lookback", clearable=False),
            dcc.Checklist(["errors only"], ["errors only"] if first("error") == "true" else [], id="search-error"),
            dcc.Input(id="search-limit", type="number", value=_limit(first("limit", "20")), min=1, max=1000),
            html.Button("Find traces", id="search-go"),
        ],
        style={"display": "grid", "gridTemplateColumns": "repeat(3, minmax(12em, 1fr))", "gap": "0.5em"},
    )  # fmt: skip


def _limit(text: str) -> int:
    try:
        return max(1, min(1000, int(float(text))))
    except ValueError:
        return 20


def _results(traces: list[SummaryJson]) -> list[Any]:
    if not traces:
        return [html.P("No traces match.", id="search-empty")]
    return [
        dcc.Graph(id="search-scatter", figure=_scatter(traces), config={"displaylogo": False}),
        html.Table(
            [html.Thead(html.Tr([html.Th(h) for h in HEADINGS])), html.Tbody([_row(t) for t in traces])],
            id="search-results",
            style={"width": "100%", "textAlign": "left", "borderSpacing": "1em 0.3em"},
        ),
    ]


def _start(trace: SummaryJson) -> datetime:
    return datetime.fromtimestamp(int(trace["startTimeUnixNano"]) / 1e9, UTC)


def _scatter(traces: list[SummaryJson]) -> go.Figure:
    figure = go.Figure(
        go.Scatter(
            x=[_start(t) for t in traces],
            y=[t["durationNano"] / 1e6 for t in traces],
            mode="markers",
            marker={"color": ["#e15759" if t["errorCount"] else "#4e79a7" for t in traces], "size": 10},
            customdata=[t["traceId"] for t in traces],
            text=[f"{t['rootService']}: {t['rootOperation']}" for t in traces],
            hovertemplate="%{text}<br>%{y:.3f} ms<extra></extra>",
        )
    )
    figure.update_layout(height=260, margin={"l": 40, "r": 10, "t": 10, "b": 30}, yaxis={"title": "ms"})
    return figure


def _row(trace: SummaryJson) -> html.Tr:
    services = ", ".join(f"{s['name']} ({s['spans']})" for s in trace["services"])
    return html.Tr(
        [
            html.Td(_start(trace).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]),
            html.Td(dcc.Link(f"{trace['rootService']}: {trace['rootOperation']}", href=f"/trace/{trace['traceId']}")),
            html.Td(f"{trace['durationNano'] / 1e6:.3f} ms"),
            html.Td(count(trace["spanCount"], "span")),
            html.Td(trace["errorCount"]),
            html.Td(services),
        ],
        className="trace-row",
    )


def register(app: Dash) -> None:
    @app.callback(
        Output("url", "search"),
        Input("search-go", "n_clicks"),
        [State(f"search-{name}", "value") for name in ("service", "operation", "attr", "min", "max", "lookback")]
        + [State("search-error", "value"), State("search-limit", "value")],
        prevent_initial_call=True,
    )
    async def submit(_clicks: int | None, service: str | None, operation: str | None, attr: str | None,
                     low: str | None, high: str | None, lookback: str | None, error: list[str] | None,
                     limit: int | None) -> str:  # fmt: skip
        if not _clicks:  # the form was just rendered (Dash calls callbacks of new components)
            raise PreventUpdate
        fields: list[tuple[str, str]] = [
            (name, value)
            for name, value in (("service", service), ("operation", operation), ("minDuration", low),
                                ("maxDuration", high), ("lookback", lookback))
            if value
        ]  # fmt: skip
        fields += [("attr", line.strip()) for line in (attr or "").splitlines() if line.strip()]
        fields += [("error", "true")] if error else []
        fields += [("limit", str(limit))] if limit else []
        return "?" + urlencode(fields or [("lookback", "1h")])

    @app.callback(
        Output("url", "pathname", allow_duplicate=True),
        Input("search-scatter", "clickData"),
        prevent_initial_call=True,
    )
    async def open_dot(click: dict[str, Any] | None) -> str:
        if not click:
            raise PreventUpdate
        return f"/trace/{click['points'][0]['customdata']}"
