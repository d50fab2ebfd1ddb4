"""The trace page (``/trace/<id>``): summary, service legend, and the interactive waterfall.

The server sends the API's trace JSON once, in a store; the browser does the rest
(assets/trace_*.js): collapsible span tree, critical path, minimap, ruler and zoom, span detail,
search, JSON download. It draws only the rows in view, so a trace of 10,000+ spans stays usable;
this module must never build a component per span. The page's state (``?span=…&q=…&collapsed=…``)
is kept in the URL by the script without a round trip to the server.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from dash import Dash, Input, Output, dcc, html

from tracehouse.dashboard.colours import service_colours
from tracehouse.query.client import TraceJson

__all__ = ["count", "page", "register"]

#: The page's scripts and styles in dashboard/assets/, in load order.
ASSETS = ("trace_model.js", "trace_timeline.js", "trace_detail.js", "trace_view.js", "trace.css")
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
# Dash's FastAPI backend collects assets/ on the first request to "/" or "/_dash-*" only, so the
# first page it serves after start-up, when that is a deep link to a trace, comes without them:
# then the callback loads them itself (once) before it mounts the waterfall.
_MOUNT = """function (data) {
  const mount = () => window.tracehouse.tracePage.mount("trace-view", data);
  if (window.tracehouse && window.tracehouse.tracePage) return mount();
  const load = (url) => new Promise((resolve, reject) => {
    const css = url.split("?")[0].endsWith(".css");
    const node = document.createElement(css ? "link" : "script");
    if (css) { node.rel = "stylesheet"; node.href = url; } else { node.src = url; node.async = false; }
    node.onload = resolve;
    node.onerror = () => reject(new Error("could not load " + url));
    document.head.appendChild(node);
  });
  window.tracehouseAssets = window.tracehouseAssets || Promise.all(ASSET_URLS.map(load));
  window.tracehouseAssets.then(mount);
  return window.dash_clientside.no_update;
}"""


def page(trace_id: str, trace: TraceJson | None) -> html.Div:
    if trace is None:
        return html.Div([html.H2(f"Trace {trace_id}"), html.P("Not found.", className="error")])
    colours = service_colours(trace["services"])
    return html.Div(
        [
            html.H2([f"Trace {trace['traceId']}"]),
            html.P(_root_line(trace), id="trace-root"),
            html.P(summary(trace), id="trace-summary"),
            *([_truncated(trace)] if trace.get("truncated") else []),
            html.Div([_legend_entry(name, colour) for name, colour in colours.items()], id="trace-legend"),
            dcc.Store(id="trace-data", data={"trace": trace, "colours": colours}),
            dcc.Store(id="trace-mounted"),
            # No children from Dash: the script owns every node in it (React must not reconcile them).
            html.Div(id="trace-view", className="trace-view"),
        ],
        className="trace-page",
    )


def summary(trace: TraceJson) -> str:
    errors = sum(1 for s in trace["spans"] if s["status"]["code"] == "Error")
    return ", ".join(
        [
            count(trace["spanCount"], "span"),
            count(len(trace["services"]), "service"),
            f"{trace['durationNano'] / 1e6:.3f} ms",
            count(errors, "error"),
        ]
    )


def _root_line(trace: TraceJson) -> str:
    root = trace["spans"][0]
    started = datetime.fromtimestamp(int(trace["startTimeUnixNano"]) / 1e9, UTC)
    return f"{root['serviceName']}: {root['name']} · started {started:%Y-%m-%d %H:%M:%S.%f} UTC"


def _truncated(trace: TraceJson) -> html.P:
    return html.P(
        f"This trace has more spans than the API returns: the earliest {trace['spanCount']:,} are shown.",
        id="trace-truncated",
        className="error",
    )


def _legend_entry(name: str, colour: str) -> html.Span:
    swatch = html.Span(style={"background": colour, "width": "0.8em", "height": "0.8em", "display": "inline-block"})
    style = {"marginRight": "1.2em", "whiteSpace": "nowrap", "display": "inline-block"}
    return html.Span([swatch, f" {name}"], className="legend-service", style=style)


def count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def register(app: Dash) -> None:
    """The one callback: hand the store's trace to the browser-side waterfall."""
    urls = [f"{app.get_asset_url(name)}?m={(ASSETS_DIR / name).stat().st_mtime:.0f}" for name in ASSETS]
    mount = _MOUNT.replace("ASSET_URLS", json.dumps(urls))
    # Dash leaves clientside_callback unannotated.
    app.clientside_callback(mount, Output("trace-mounted", "data"), Input("trace-data", "data"))  # type: ignore[no-untyped-call]
