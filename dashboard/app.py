"""The dashboard (Plotly Dash on the query API's FastAPI app).

It reads only the query API, through `QueryClient` over HTTP — never the store — so it
works the same against a remote query service. Every page's state is in its URL.
Callbacks are async: Dash runs sync callbacks on the event loop, where a blocking call to
our own API would deadlock.
"""

from __future__ import annotations

import re
from typing import Any

from dash import Dash, Input, Output, State, dcc, html
from fastapi import FastAPI

from tracehouse.dashboard.waterfall import service_colours, waterfall
from tracehouse.query.client import QueryApiError, QueryClient, TraceJson

_TRACE_PATH = re.compile(r"^/trace/([0-9A-Za-z]+)$")


def mount_dashboard(server: FastAPI, api_base_url: str) -> Dash:
    """Attach the dashboard to `server` at `/`; it queries the API at `api_base_url`."""
    # Dash 4 takes a FastAPI server; its `server` annotation predates the backends.
    app = Dash(__name__, server=server, title="Tracehouse", update_title="", suppress_callback_exceptions=True)  # type: ignore[arg-type]
    client = QueryClient(api_base_url)
    app.layout = html.Div(
        [
            dcc.Location(id="url"),
            html.Header(
                [html.A("Tracehouse", href="/", className="brand"), _lookup_form()],
                style={"display": "flex", "alignItems": "center", "padding": "1em 0"},
            ),
            html.Main(id="page"),
        ],
        style={"fontFamily": "system-ui, sans-serif", "margin": "0 2em"},
    )

    @app.callback(Output("page", "children"), Input("url", "pathname"))
    async def render(pathname: str | None) -> Any:
        match = _TRACE_PATH.match(pathname or "/")
        try:
            if match:
                return _trace_page(match[1], await client.trace(match[1]))
            return _home_page(await client.services())
        except QueryApiError as exc:
            return html.P(f"The query API answered {exc.status}: {exc.message}", className="error")

    @app.callback(
        Output("url", "pathname"),
        Input("lookup-go", "n_clicks"),
        Input("lookup-id", "n_submit"),
        State("lookup-id", "value"),
        prevent_initial_call=True,
    )
    async def lookup(_clicks: int | None, _submits: int | None, trace_id: str | None) -> str:
        return f"/trace/{(trace_id or '').strip()}"

    return app


def _lookup_form() -> html.Div:
    return html.Div(
        [
            dcc.Input(id="lookup-id", placeholder="trace id", debounce=True, size="40"),
            html.Button("Open trace", id="lookup-go"),
        ],
        style={"display": "inline-flex", "gap": "0.5em", "marginLeft": "2em"},
    )


def _home_page(services: list[str]) -> html.Div:
    if not services:
        return html.Div([html.H2("Services"), html.P("No spans yet. Point an OTLP exporter at this server.")])
    return html.Div([html.H2("Services"), html.Ul([html.Li(name, className="service") for name in services])])


def _trace_page(trace_id: str, trace: TraceJson | None) -> html.Div:
    if trace is None:
        return html.Div([html.H2(f"Trace {trace_id}"), html.P("Not found.", className="error")])
    colours = service_colours(trace["services"])
    errors = sum(1 for s in trace["spans"] if s["status"]["code"] == "Error")
    summary = ", ".join(
        [
            _count(trace["spanCount"], "span"),
            _count(len(trace["services"]), "service"),
            f"{trace['durationNano'] / 1e6:.3f} ms",
            _count(errors, "error"),
        ]
    )
    legend = [html.Span(name, style={"color": colours[name], "marginRight": "1em"}) for name in trace["services"]]
    return html.Div(
        [
            html.H2(f"Trace {trace['traceId']}"),
            html.P(summary, id="trace-summary"),
            html.Div(legend),
            dcc.Graph(id="waterfall", figure=waterfall(trace), config={"displaylogo": False}),
        ]
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
