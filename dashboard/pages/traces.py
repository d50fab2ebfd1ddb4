"""The trace search page: a form whose state lives in the URL's query string (attribute
expressions with autocomplete from the API's keys and values; a preset lookback or a custom
range), a scatter of duration over time (click a dot to open the trace) and the results table,
newest first. A search the API refuses leaves the form in place with the API's message.
The table is one HTML string put in place by the browser: never a component per row."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

import plotly.graph_objects as go
from dash import ALL, Dash, Input, Output, State, ctx, dcc, html
from dash.exceptions import PreventUpdate

from tracehouse.dashboard.attr_suggest import suggest
from tracehouse.dashboard.empty import send_spans
from tracehouse.dashboard.html_string import in_app_clicks, tag, text
from tracehouse.dashboard.pages.trace import count
from tracehouse.query.client import QueryApiError, QueryClient, SummaryJson

LOOKBACKS = {"15m": 15 * 60, "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400}
HEADINGS = ("start", "trace", "duration", "spans", "errors", "services")
#: URL parameter → the form field holding it, in the URL's order.
_FIELDS = (("service", "service"), ("operation", "operation"), ("parentService", "parent"), ("peer", "peer"),
           ("minDuration", "min"), ("maxDuration", "max"), ("start", "from"), ("end", "to"),
           ("lookback", "lookback"))  # fmt: skip
_SUGGESTION = "attr-suggestion"
_TABLE_STYLE = "width: 100%; text-align: left; border-spacing: 1em 0.3em"


def first(form: dict[str, list[str]], name: str, default: str = "") -> str:
    return form.get(name, [default])[0]


def time_params(form: dict[str, list[str]]) -> dict[str, str]:
    """The API's range: a custom ``start``/``end`` (epoch µs or ISO 8601, as the API takes them)
    when the URL has one, else the preset lookback ending now."""
    custom = {name: first(form, name).strip() for name in ("start", "end") if first(form, name).strip()}
    if custom:
        return custom
    seconds = LOOKBACKS.get(first(form, "lookback", "1h"), 3600)
    return {"start": str(int((datetime.now(UTC).timestamp() - seconds) * 1e6))}


def api_params(form: dict[str, list[str]]) -> dict[str, str | list[str]]:
    """The page's query string -> the search API's parameters."""
    params: dict[str, str | list[str]] = {}
    for name in ("service", "operation", "parentService", "peer", "minDuration", "maxDuration", "limit"):
        if first(form, name):
            params[name] = first(form, name)
    if form.get("attr"):
        params["attr"] = [a for a in form["attr"] if a]
    if first(form, "error") == "true":
        params["error"] = "true"
    return {**params, **time_params(form)}


async def page(client: QueryClient, search: str) -> html.Div:
    form = parse_qs(search.lstrip("?"))
    services = await client.services()
    service = first(form, "service")
    operations = [op["name"] for op in await client.operations(service)] if service else []
    if not services:
        return html.Div([_form(form, services, operations), send_spans("search-empty")])
    try:
        traces = await client.find_traces(api_params(form))  # no query string: the last hour
    except QueryApiError as exc:  # a search the API refuses: keep the form, so it can be fixed
        message = f"The query API refused the search ({exc.status}): {exc.message}"
        return html.Div([_form(form, services, operations), html.P(message, id="search-problem", className="error")])
    return html.Div([_form(form, services, operations), *_results(traces)])


def _form(form: dict[str, list[str]], services: list[str], operations: list[str]) -> html.Div:
    custom = bool(first(form, "start") or first(form, "end"))
    lookback = None if custom else first(form, "lookback", "1h")
    return html.Div(
        [
            dcc.Dropdown(services, first(form, "service") or None, id="search-service", placeholder="service"),
            dcc.Dropdown(sorted(set(operations)), first(form, "operation") or None, id="search-operation",
                         placeholder="operation"),
            _attributes(form),
            dcc.Input(id="search-parent", value=first(form, "parentService"), placeholder="called by service"),
            dcc.Input(id="search-peer", value=first(form, "peer"), placeholder="calling database, queue or peer"),
            dcc.Input(id="search-min", value=first(form, "minDuration"), placeholder="min duration (250ms)"),
            dcc.Input(id="search-max", value=first(form, "maxDuration"), placeholder="max duration (1.5s)"),
            dcc.Dropdown(list(LOOKBACKS), lookback, id="search-lookback", clearable=False,
                         placeholder="custom range"),
            dcc.Input(id="search-from", value=first(form, "start"), placeholder="from (2026-11-25 17:00, UTC)"),
            dcc.Input(id="search-to", value=first(form, "end"), placeholder="to (empty: now)"),
            dcc.Checklist(["errors only"], ["errors only"] if first(form, "error") == "true" else [],
                          id="search-error"),
            dcc.Input(id="search-limit", type="number", value=_limit(first(form, "limit", "20")), min=1, max=1000),
            html.Button("Find traces", id="search-go"),
        ],
        style={"display": "grid", "gridTemplateColumns": "repeat(3, minmax(12em, 1fr))", "gap": "0.5em"},
    )  # fmt: skip


def _attributes(form: dict[str, list[str]]) -> html.Div:
    """The expressions, one per line, and the suggestions for the line being typed (the last)."""
    hint = "attributes, one per line: key=value, key!=value, key=~regex, key, !key"
    return html.Div(
        [
            # one expression a line, the last one open for the next
            dcc.Textarea(id="search-attr", value="".join(f"{a}\n" for a in form.get("attr", [])), placeholder=hint,
                         style={"width": "100%", "boxSizing": "border-box"}),
            html.Div(id="search-attr-suggest", style={"display": "flex", "flexWrap": "wrap", "gap": "0.3em"}),
        ],
        style={"gridRow": "span 2"},
    )  # fmt: skip


def _suggestion(text: str) -> html.Button:
    style = {"fontSize": "12px", "padding": "0.1em 0.5em", "border": "1px solid #bbb", "borderRadius": "3px",
             "background": "#f6f6f6", "cursor": "pointer"}  # fmt: skip
    return html.Button(text, id={"type": _SUGGESTION, "value": text}, className=_SUGGESTION, style=style)


def suggestion_buttons(offered: list[str], shown: list[dict[str, Any]] | None) -> list[html.Button]:
    """The buttons for `offered`; `PreventUpdate` when they are the ones on screen (`shown`: the
    children as Dash sends them back as State). Typing on within one suggestion offers the same
    buttons again: not redrawn, so a click on one while the answer for the next keystroke arrives
    is not lost with it."""
    if offered == [str(child["props"]["id"]["value"]) for child in shown or []]:
        raise PreventUpdate
    return [_suggestion(s) for s in offered]


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
        # Dash's renderer took 17 s over 300 rows of components (7 a row) and froze on 1,000;
        # as one string `_SHOW_ROWS` puts them in place in milliseconds.
        dcc.Store(id="search-rows", data=results_html(traces)),
        html.Div(id="search-results-box"),
    ]


def results_html(traces: list[SummaryJson]) -> str:
    """The results table (``#search-results``, a ``tr.trace-row`` per trace) as HTML."""
    head = tag("thead", {}, tag("tr", {}, *(tag("th", {}, h) for h in HEADINGS)))
    body = tag("tbody", {}, *(_row(t) for t in traces))
    return tag("table", {"id": "search-results", "style": _TABLE_STYLE}, head, body)


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


def _row(trace: SummaryJson) -> str:
    services = ", ".join(f"{s['name']} ({s['spans']})" for s in trace["services"])
    name = f"{trace['rootService']}: {trace['rootOperation']}"
    cells = (
        text(_start(trace).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]),
        tag("a", {"class": "trace-link", "href": f"/trace/{trace['traceId']}"}, text(name)),
        text(f"{trace['durationNano'] / 1e6:.3f} ms"),
        text(count(trace["spanCount"], "span")),
        text(trace["errorCount"]),
        text(services),
    )
    return tag("tr", {"class": "trace-row"}, *(tag("td", {}, cell) for cell in cells))


#: Puts the results table (`results_html`) in its box, outside React. A click on a trace's link
#: navigates inside the app, as a ``dcc.Link`` does; with a modifier key it is the browser's (a new
#: tab, say). Dash may run the callback before React has put the box in the document.
_SHOW_ROWS = """function (rows) {
  if (!window.tracehouseResultLinks) {
    window.tracehouseResultLinks = true;
    IN_APP_CLICKS
  }
  const show = (frames) => {
    const box = document.getElementById("search-results-box");
    if (box) box.innerHTML = rows || "";
    else if (frames > 0) requestAnimationFrame(() => show(frames - 1));
  };
  show(600);
  return window.dash_clientside.no_update;
}""".replace("IN_APP_CLICKS", in_app_clicks("#search-results a.trace-link"))


#: Keyboard use of the suggestions (installed once): ↓ from the attribute box goes to the first
#: suggestion, ←/→/↑/↓ move between them, Enter takes one (a button's click), Escape goes back; after
#: a suggestion is taken the caret is back at the end of the box, ready for the value or next line.
_KEYS = """function (_children) {
  if (!window.tracehouseSuggestKeys) {
    window.tracehouseSuggestKeys = true;
    const box = () => document.getElementById("search-attr");
    const offered = () => Array.from(document.querySelectorAll("#search-attr-suggest .attr-suggestion"));
    const moves = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1 };
    document.addEventListener("keydown", (event) => {
      const list = offered();
      const at = list.indexOf(document.activeElement);
      if (event.target === box() && event.key === "ArrowDown" && list.length) {
        event.preventDefault();
        list[0].focus();
      } else if (at >= 0 && event.key in moves) {
        event.preventDefault();
        list[Math.min(list.length - 1, Math.max(0, at + moves[event.key]))].focus();
      } else if (at >= 0 && event.key === "Escape") {
        box().focus();
      }
    });
    document.addEventListener("click", (event) => {
      if (!event.target.closest || !event.target.closest(".attr-suggestion")) return;
      const watch = new MutationObserver(() => {
        const input = box();
        if (!input) return;
        watch.disconnect();
        input.focus();
        input.setSelectionRange(input.value.length, input.value.length);
      });
      watch.observe(document.getElementById("search-attr-suggest"), { childList: true, subtree: true });
    });
  }
  return window.dash_clientside.no_update;
}"""


def register(app: Dash, client: QueryClient) -> None:
    # Dash leaves clientside_callback unannotated.
    app.clientside_callback(_KEYS, Output("search-attr-suggest", "title"), Input("search-attr-suggest", "children"))  # type: ignore[no-untyped-call]
    app.clientside_callback(_SHOW_ROWS, Output("search-results-box", "title"), Input("search-rows", "data"))  # type: ignore[no-untyped-call]

    @app.callback(
        Output("url", "search"),
        Input("search-go", "n_clicks"),
        [State(f"search-{field}", "value") for _, field in _FIELDS]
        + [State("search-attr", "value"), State("search-error", "value"), State("search-limit", "value")],
        prevent_initial_call=True,
    )
    async def submit(clicks: int | None, *values: Any) -> str:
        if not clicks:  # the form was just rendered (Dash calls callbacks of new components)
            raise PreventUpdate
        return "?" + urlencode(search_fields(*values) or [("lookback", "1h")])

    @app.callback(
        Output("search-from", "value"),
        Output("search-to", "value"),
        Input("search-lookback", "value"),
        prevent_initial_call=True,
    )
    async def preset(lookback: str | None) -> tuple[str, str]:
        if not lookback:
            raise PreventUpdate
        return "", ""  # a preset replaces the custom range

    @app.callback(
        Output("search-operation", "options"),
        Output("search-operation", "value"),
        Input("search-service", "value"),
        State("search-operation", "value"),
        prevent_initial_call=True,
    )
    async def operations_of(service: str | None, chosen: str | None) -> tuple[list[str], str | None]:
        """The operation list follows the service picked (before: only once a search ran)."""
        try:
            names = sorted({op["name"] for op in await client.operations(service)}) if service else []
        except QueryApiError:
            names = []
        return names, chosen if chosen in names else None

    @app.callback(
        Output("search-attr-suggest", "children"),
        Input("search-attr", "value"),
        [State(f"search-{field}", "value") for field in ("service", "lookback", "from", "to")]
        + [State("search-attr-suggest", "children")],
        prevent_initial_call=True,
    )
    async def offer(text: str | None, service: str | None, lookback: str | None, start: str | None,
                    end: str | None, shown: list[dict[str, Any]] | None) -> list[html.Button]:  # fmt: skip
        line = (text or "").split("\n")[-1]
        form = {"lookback": [lookback or "1h"], "start": [start or ""], "end": [end or ""]}
        params = {**time_params(form), **({"service": service} if service else {})}
        try:
            offered = await suggest(client, line, params)
        except QueryApiError:
            offered = []  # no suggestions; the search itself reports what is wrong
        return suggestion_buttons(offered, shown)

    @app.callback(
        Output("search-attr", "value"),
        Input({"type": _SUGGESTION, "value": ALL}, "n_clicks"),
        State("search-attr", "value"),
        prevent_initial_call=True,
    )
    async def take(clicks: list[int | None], text: str | None) -> str:
        if not any(clicks) or not isinstance(ctx.triggered_id, dict):
            raise PreventUpdate  # new suggestions were drawn, none was clicked
        return completed(text or "", str(ctx.triggered_id["value"]))

    @app.callback(
        Output("url", "pathname", allow_duplicate=True),
        Input("search-scatter", "clickData"),
        prevent_initial_call=True,
    )
    async def open_dot(click: dict[str, Any] | None) -> str:
        if not click:
            raise PreventUpdate
        return f"/trace/{click['points'][0]['customdata']}"


def search_fields(*values: Any) -> list[tuple[str, str]]:
    """The form's values (`_FIELDS`' fields, then attributes, errors only, limit) -> the URL's query;
    a custom range replaces the preset lookback."""
    named = dict(zip((name for name, _ in _FIELDS), values, strict=False))
    attr, error, limit = values[len(_FIELDS) :]
    if named.get("start") or named.get("end"):
        named.pop("lookback", None)
    fields = [(name, str(value).strip()) for name, value in named.items() if value and str(value).strip()]
    fields += [("attr", line.strip()) for line in (attr or "").splitlines() if line.strip()]
    fields += [("error", "true")] if error else []
    return fields + ([("limit", str(limit))] if limit else [])


def completed(text: str, suggestion: str) -> str:
    """The attribute text with its last line replaced by the chosen suggestion; a whole expression
    ends the line, so the next one can be typed."""
    lines = text.split("\n")
    whole = not suggestion.endswith(("=", "=~", "!="))
    return "\n".join([*lines[:-1], suggestion]) + ("\n" if whole else "")
