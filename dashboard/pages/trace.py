"""The trace page: summary line, service legend and the waterfall of one trace."""

from __future__ import annotations

from dash import dcc, html

from tracehouse.dashboard.waterfall import service_colours, waterfall
from tracehouse.query.client import TraceJson


def page(trace_id: str, trace: TraceJson | None) -> html.Div:
    if trace is None:
        return html.Div([html.H2(f"Trace {trace_id}"), html.P("Not found.", className="error")])
    colours = service_colours(trace["services"])
    errors = sum(1 for s in trace["spans"] if s["status"]["code"] == "Error")
    summary = ", ".join(
        [
            count(trace["spanCount"], "span"),
            count(len(trace["services"]), "service"),
            f"{trace['durationNano'] / 1e6:.3f} ms",
            count(errors, "error"),
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


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
