"""The breaker wall (``/breakers``): a live Hystrix-style tile per breaker and thread pool, redrawn
every second from the breakers API, and the stored history of the breaker whose tile was clicked.

The page's whole state is its URL query (``?cluster=shop&window=1m&sort=volume&breaker=NAME``);
controls write the URL (``callback-nav``: no reload) and the app re-renders the page from it, so a
wall can be shared. Ticks redraw the tiles only; they never reload or re-render the page.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Container
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

from dash import Dash, Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from tracehouse.dashboard import sparkline
from tracehouse.dashboard.breaker_history import history_figure
from tracehouse.dashboard.breaker_tiles import SORTS, breaker_tile, pool_tile, sort_breakers
from tracehouse.dashboard.empty import send_breakers
from tracehouse.dashboard.pages.trace import count
from tracehouse.query.client import BreakerJson, BreakersJson, QueryApiError, QueryClient, ThreadPoolJson

__all__ = ["WallState", "page", "register"]

PATH = "/breakers"
WINDOWS = ("10s", "30s", "1m", "5m", "15m", "1h")
#: History range → (seconds, step): about 200–360 points each.
RANGES = {"15m": (900, "5s"), "1h": (3600, "15s"), "6h": (6 * 3600, "1m"), "24h": (86400, "5m")}
KINDS = ("command", "threadpool")
TICK_MS = 1000
HISTORY_TICK_MS = 10_000
#: Sparklines seeded from the history API per tick; the rest are seeded on the next ticks.
MAX_SEEDS_PER_TICK = 16
_ALL = ""  # the cluster selector's "every cluster"


@dataclass(frozen=True, slots=True)
class WallState:
    """The page's state as its URL query carries it; defaults are left out of the URL, and an
    unknown value reads as the default (a hand-edited URL never breaks the page)."""

    cluster: str | None = None
    window: str = "10s"
    sort: str = "error-volume"
    breaker: str | None = None
    #: The selected breaker's cluster when the wall shows every cluster.
    breaker_cluster: str | None = None
    kind: str = "command"
    range: str = "1h"

    @classmethod
    def parse(cls, search: str) -> WallState:
        form = {key: values[0] for key, values in parse_qs(search.lstrip("?")).items() if values[0]}
        default = cls()
        return cls(
            cluster=form.get("cluster"),
            window=_known(form.get("window"), WINDOWS, default.window),
            sort=_known(form.get("sort"), SORTS, default.sort),
            breaker=form.get("breaker"),
            breaker_cluster=form.get("breakerCluster") if "cluster" not in form else None,
            kind=_known(form.get("kind"), KINDS, default.kind),
            range=_known(form.get("range"), RANGES, default.range),
        )

    def query(self) -> str:
        """``?…`` with the values that differ from the defaults, in a fixed order; ``""`` for none."""
        default = WallState()
        pairs = [
            ("cluster", self.cluster),
            ("window", self.window if self.window != default.window else None),
            ("sort", self.sort if self.sort != default.sort else None),
            ("breaker", self.breaker),
            ("breakerCluster", self.breaker_cluster if self.cluster is None and self.breaker else None),
            ("kind", self.kind if self.breaker and self.kind != default.kind else None),
            ("range", self.range if self.breaker and self.range != default.range else None),
        ]
        fields = [(key, value) for key, value in pairs if value]
        return "?" + urlencode(fields) if fields else ""

    @property
    def selected_cluster(self) -> str | None:
        return self.cluster or self.breaker_cluster

    def selecting(self, cluster: str, name: str, kind: str) -> WallState:
        """This wall with the history of ``name`` (of ``cluster``) open."""
        return replace(self, breaker=name, breaker_cluster=None if self.cluster else cluster, kind=kind)

    def closed(self) -> WallState:
        return replace(self, breaker=None, breaker_cluster=None, kind="command", range="1h")


def _known(value: str | None, known: Container[str], default: str) -> str:
    return value if value is not None and value in known else default


async def page(client: QueryClient, search: str) -> html.Div:
    state = WallState.parse(search)
    clusters = [c["cluster"] for c in await client.breaker_clusters("1h")]
    if state.cluster is not None and state.cluster not in clusters:
        clusters.append(state.cluster)
    return html.Div(
        [
            dcc.Location(id="breakers-url", refresh="callback-nav"),
            dcc.Store(id="breakers-state", data=state.query()),
            dcc.Store(id="breakers-series"),
            dcc.Interval(id="breakers-tick", interval=TICK_MS),
            html.H2("Breakers"),
            _controls(state, clusters),
            *([_history_panel(state)] if state.breaker and state.selected_cluster else []),
            html.Div(id="breakers-wall", style=_WALL),
            html.Div(id="breakers-pools"),
        ]
    )


_WALL = {"display": "flex", "flexWrap": "wrap", "gap": "6px", "marginTop": "0.8em"}
_CONTROLS = {"display": "flex", "gap": "1em", "alignItems": "center", "flexWrap": "wrap"}


def _controls(state: WallState, clusters: list[str]) -> html.Div:
    cluster_options = [{"label": "All clusters", "value": _ALL}, *({"label": c, "value": c} for c in sorted(clusters))]
    sort_options = [{"label": label, "value": key} for key, (label, _) in SORTS.items()]
    return html.Div(
        [
            _labelled("Cluster", dcc.Dropdown(cluster_options, state.cluster or _ALL, id="breakers-cluster",
                                              clearable=False, style={"width": "16em"})),
            _labelled("Window", dcc.Dropdown(list(WINDOWS), state.window, id="breakers-window", clearable=False,
                                             style={"width": "6em"})),
            _labelled("Sort", dcc.Dropdown(sort_options, state.sort, id="breakers-sort", clearable=False,
                                           style={"width": "14em"})),
            html.Span(id="breakers-status", style={"color": "#777"}),
        ],
        style=_CONTROLS,
    )  # fmt: skip


def _labelled(label: str, control: Any) -> html.Div:
    # Not an html.Label: the dropdown's options open inside it, and a label forwards their clicks.
    return html.Div([label, control], style={"display": "flex", "gap": "0.4em", "alignItems": "center"})


def _history_panel(state: WallState) -> html.Div:
    assert state.breaker is not None
    kind = "thread pool" if state.kind == "threadpool" else "breaker"
    return html.Div(
        [
            html.H3([f"History of {kind} {state.breaker} ({state.selected_cluster}) ",
                     dcc.Link("close", href=PATH + state.closed().query(), id="breaker-history-close")]),
            _labelled("Range", dcc.Dropdown(list(RANGES), state.range, id="breaker-range", clearable=False,
                                            style={"width": "6em"})),
            html.P(id="breaker-history-error", className="error"),
            dcc.Graph(id="breaker-history-graph", config={"displaylogo": False}),
            dcc.Interval(id="breaker-history-tick", interval=HISTORY_TICK_MS),
        ],
        id="breaker-history",
        style={"border": "1px solid #ddd", "padding": "0 1em", "marginTop": "0.8em"},
    )  # fmt: skip


def _key(cluster: str, name: str) -> str:
    return f"{cluster}\n{name}"


async def _seed(client: QueryClient, b: BreakerJson, end_s: int, window_s: int) -> sparkline.Series:
    """The last two minutes of a breaker's rate from its stored per-second history."""
    start_s = end_s - sparkline.SPAN_S - window_s
    try:
        history = await client.breaker_history(
            b["cluster"], b["name"], start_us=start_s * 1_000_000, end_us=end_s * 1_000_000, step="1s"
        )
    except QueryApiError:
        return []  # the sparkline starts from the live ticks instead
    points = ((p["time"] // 1_000_000, p["requests"]) for p in history["points"])
    return sparkline.seed(points, end_s, window_s)


async def update_series(client: QueryClient, wall: BreakersJson, stored: dict[str, Any] | None) -> dict[str, Any]:
    """The sparklines after this tick: kept series extended with the live rate, new breakers'
    seeded (a bounded number per tick), departed breakers' dropped."""
    window_s, end_s = wall["window"], wall["end"] // 1_000_000
    old: dict[str, sparkline.Series] = stored["series"] if stored and stored.get("window") == window_s else {}
    current = {_key(b["cluster"], b["name"]): b for b in wall["breakers"]}
    missing = [key for key in current if key not in old][:MAX_SEEDS_PER_TICK]
    seeded = await asyncio.gather(*(_seed(client, current[key], end_s, window_s) for key in missing))
    base = {**dict(zip(missing, seeded, strict=True)), **old}
    series = {
        key: sparkline.extend(base[key], end_s, b["rate"]["cluster"]) for key, b in current.items() if key in base
    }
    return {"window": window_s, "series": series}


def render_wall(wall: BreakersJson, state: WallState, series: dict[str, sparkline.Series]) -> tuple[Any, Any, str]:
    """(breaker tiles, thread-pool section, status line) of one tick."""
    end_s = wall["end"] // 1_000_000
    every = state.cluster is None

    def tile(b: BreakerJson) -> Any:
        href = PATH + state.selecting(b["cluster"], b["name"], "command").query()
        return breaker_tile(b, series.get(_key(b["cluster"], b["name"]), []), end_s, href, every)

    def pool(p: ThreadPoolJson) -> Any:
        return pool_tile(p, PATH + state.selecting(p["cluster"], p["name"], "threadpool").query(), every)

    tiles = [tile(b) for b in sort_breakers(wall["breakers"], state.sort)]
    if not tiles:
        tiles = [send_breakers("breakers-empty")]
    volume = state.sort == "volume"
    pools = sorted(wall["threadPools"], key=lambda p: (-p["rate"]["cluster"] if volume else 0, p["name"], p["cluster"]))
    section = [html.H3("Thread pools"), html.Div([pool(p) for p in pools], style=_WALL)] if pools else []
    ending = datetime.fromtimestamp(end_s, UTC).strftime("%H:%M:%S")
    found = f"{count(len(wall['breakers']), 'breaker')}, {count(len(pools), 'thread pool')}"
    status = f"{found}; {wall['window']} s window to {ending} UTC"
    return tiles, section, status


def register(app: Dash, client: QueryClient) -> None:
    @app.callback(
        Output("breakers-wall", "children"),
        Output("breakers-pools", "children"),
        Output("breakers-status", "children"),
        Output("breakers-series", "data"),
        Input("breakers-tick", "n_intervals"),
        State("breakers-state", "data"),
        State("breakers-series", "data"),
    )
    async def tick(_n: int | None, search: str | None, stored: dict[str, Any] | None) -> tuple[Any, ...]:
        state = WallState.parse(search or "")
        try:
            wall = await client.breakers(state.cluster, state.window)
        except QueryApiError as exc:  # keep the last tiles; say why they are stale
            return no_update, no_update, f"The query API answered {exc.status}: {exc.message}", no_update
        data = await update_series(client, wall, stored)
        return *render_wall(wall, state, data["series"]), data

    @app.callback(
        Output("breakers-url", "search"),
        Input("breakers-cluster", "value"),
        Input("breakers-window", "value"),
        Input("breakers-sort", "value"),
        State("breakers-state", "data"),
        prevent_initial_call=True,
    )
    async def navigate(cluster: str | None, window: str | None, sort: str | None, search: str | None) -> str:
        state = WallState.parse(search or "")
        chosen = cluster or None
        new = replace(state, cluster=chosen, window=window or state.window, sort=sort or state.sort)
        if chosen != state.cluster:  # keep the open history only if it belongs to the new wall
            keep = state.breaker is not None and chosen in (None, state.selected_cluster)
            new = replace(new, breaker_cluster=state.selected_cluster) if keep else new.closed()
        if new.query() == state.query():
            raise PreventUpdate
        return new.query()

    @app.callback(
        Output("breakers-url", "search", allow_duplicate=True),
        Input("breaker-range", "value"),
        State("breakers-state", "data"),
        prevent_initial_call=True,
    )
    async def choose_range(chosen: str | None, search: str | None) -> str:
        state = WallState.parse(search or "")
        new = replace(state, range=chosen or state.range)
        if new == state:
            raise PreventUpdate
        return new.query()

    @app.callback(
        Output("breaker-history-graph", "figure"),
        Output("breaker-history-error", "children"),
        Input("breaker-history-tick", "n_intervals"),
        State("breakers-state", "data"),
    )
    async def history(_n: int | None, search: str | None) -> tuple[Any, str]:
        state = WallState.parse(search or "")
        if state.breaker is None or state.selected_cluster is None:
            raise PreventUpdate
        seconds, step = RANGES[state.range]
        end_s = int(time.time()) + 1
        try:
            found = await client.breaker_history(
                state.selected_cluster, state.breaker, kind=state.kind,
                start_us=(end_s - seconds) * 1_000_000, end_us=end_s * 1_000_000, step=step,
            )  # fmt: skip
        except QueryApiError as exc:
            return no_update, f"The query API answered {exc.status}: {exc.message}"
        return history_figure(found, end_s - seconds, end_s), ""
