"""The dashboard (Plotly Dash on the query API's FastAPI app).

It reads only the query API, through `QueryClient` over HTTP — never the store — so it
works the same against a remote query service. Every page's state is in its URL.
Callbacks are async: Dash runs sync callbacks on the event loop, where a blocking call to
our own API would deadlock.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import quote, unquote

from dash import Dash, Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate
from fastapi import FastAPI

from tracehouse.dashboard.breaker_tiles import STYLE_SHEET
from tracehouse.dashboard.compression import DashGzip
from tracehouse.dashboard.pages import breakers, service, service_map, trace, traces
from tracehouse.query.client import QueryApiError, QueryClient

log = logging.getLogger(__name__)
_SERVICE_PREFIX = "/service/"
#: Any id: a malformed one gets the API's own 400 message on the page, not the search page.
_TRACE_PATH = re.compile(r"^/trace/(.+)$")


def mount_dashboard(server: FastAPI, api_base_url: str, api_token: str | None = None) -> Dash:
    """Attach the dashboard to `server` at `/`; it queries the API at `api_base_url` (with the token)."""
    # Dash 4 takes a FastAPI server; its `server` annotation predates the backends.
    app = Dash(__name__, server=server, title="Tracehouse", update_title="", suppress_callback_exceptions=True)  # type: ignore[arg-type]
    app.index_string = _INDEX
    server.add_middleware(DashGzip)
    client = QueryClient(api_base_url, token=api_token)
    app.layout = html.Div(
        [
            # callbacks that write the URL (search form, lookup, map clicks) navigate in the app, no reload
            dcc.Location(id="url", refresh="callback-nav"),
            html.Header(
                [
                    html.A("Tracehouse", href="/?lookback=1h", className="brand"),
                    html.Nav(
                        [
                            dcc.Link("Traces", href="/?lookback=1h"),
                            dcc.Link("Service map", href="/map", id="nav-map"),
                            dcc.Link("Breakers", href=breakers.PATH, id="nav-breakers"),
                        ],
                        style={"display": "flex", "gap": "1em", "marginLeft": "2em"},
                    ),
                    _lookup_form(),
                ],
                style={"display": "flex", "alignItems": "center", "padding": "1em 0"},
            ),
            html.Main(id="page"),
        ],
        style={"fontFamily": "system-ui, sans-serif", "margin": "0 2em"},
    )

    @app.callback(Output("page", "children"), Input("url", "pathname"), Input("url", "search"))
    async def render(pathname: str | None, search: str | None) -> Any:
        return await render_page(client, pathname or "/", search or "")

    @app.callback(
        Output("url", "pathname", allow_duplicate=True),
        Output("url", "search", allow_duplicate=True),
        Input("lookup-go", "n_clicks"),
        Input("lookup-id", "n_submit"),
        State("lookup-id", "value"),
        prevent_initial_call=True,
    )
    async def lookup(clicks: int | None, submits: int | None, trace_id: str | None) -> tuple[str, str]:
        if not (clicks or submits) or not (trace_id or "").strip():
            raise PreventUpdate
        return f"/trace/{quote((trace_id or '').strip(), safe='')}", ""  # not the search's query string

    traces.register(app, client)
    trace.register(app)
    service_map.register(app)
    breakers.register(app, client)
    return app


# Dash's page with the breaker tiles' style sheet inline: present on every first page (deep links
# too, whose first request may come before Dash has collected assets/).
_INDEX = (
    """<!DOCTYPE html>
<html>
<head>
{%metas%}
<title>{%title%}</title>
{%favicon%}
{%css%}
<style>
"""
    + STYLE_SHEET
    + """</style>
</head>
<body>
{%app_entry%}
<footer>
{%config%}
{%scripts%}
{%renderer%}
</footer>
</body>
</html>
"""
)


async def render_page(client: QueryClient, pathname: str, search: str) -> Any:
    """The page at `pathname`; whatever goes wrong, a message saying so, never a blank page."""
    try:
        return await _page(client, pathname, search)
    except QueryApiError as exc:
        return html.P(f"The query API answered {exc.status}: {exc.message}", className="error", id="page-error")
    except Exception as exc:  # a bug or an answer of the wrong shape: say so here, the details in the log
        log.exception("the dashboard could not draw %s%s", pathname, search)
        message = f"This page could not be drawn ({type(exc).__name__}); the server's log has the details."
        return html.P(message, className="error", id="page-error")


async def _page(client: QueryClient, pathname: str, search: str) -> Any:
    if match := _TRACE_PATH.match(pathname):
        trace_id = unquote(match[1]).strip()
        return trace.page(trace_id, await client.trace(trace_id))
    if pathname == "/map":
        return await service_map.page(client, search)
    if pathname == breakers.PATH:
        return await breakers.page(client, search)
    if pathname.startswith(_SERVICE_PREFIX):
        return await service.page(client, unquote(pathname[len(_SERVICE_PREFIX) :]), search)
    if pathname.rstrip("/") != "":
        shown = unquote(pathname)[:200]
        return html.P([f"There is no page at {shown}. ", dcc.Link("Search traces", href="/"), "."],
                      className="error", id="page-error")  # fmt: skip
    return await traces.page(client, search)


def _lookup_form() -> html.Div:
    return html.Div(
        [
            dcc.Input(id="lookup-id", placeholder="trace id", debounce=True, style={"width": "22em"}),
            html.Button("Open trace", id="lookup-go"),
        ],
        style={"display": "inline-flex", "gap": "0.5em", "marginLeft": "2em"},
    )
