"""The breaker wall (``/breakers``): a live Hystrix-style tile per breaker and thread pool, redrawn
every second from the breakers API, and the stored history of the breaker whose tile was clicked.

The page's whole state is its URL query (``?cluster=shop&window=1m&sort=volume&breaker=NAME``);
controls write the URL (``callback-nav``: no reload) and the app re-renders the page from it, so a
wall can be shared. Ticks redraw the tiles only; they never reload or re-render the page.
"""

from __future__ import annotations

import asyncio
import logging
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
from tracehouse.dashboard.history_range import RANGES, RangeError, history_span
from tracehouse.dashboard.html_string import to_html
from tracehouse.dashboard.pages.trace import count
from tracehouse.dashboard.wall_patch import PATCH_TILES
from tracehouse.query.client import BreakerJson, BreakersJson, QueryApiError, QueryClient, ThreadPoolJson

__all__ = ["SeriesCache", "WallState", "page", "register"]

log = logging.getLogger(__name__)
PATH = "/breakers"
WINDOWS = ("10s", "30s", "1m", "5m", "15m", "1h")
KINDS = ("command", "threadpool")
TICK_MS = 1000
HISTORY_TICK_MS = 10_000
#: History reads seeding sparklines at once; the other new breakers are seeded on later ticks.
MAX_SEEDS_PER_TICK = 8
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
    #: A custom history range (UTC times as typed); it replaces the preset `range`.
    since: str | None = None
    until: str | None = None

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
            since=form.get("from"),
            until=form.get("to") if "from" in form else None,
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
            ("range", self.range if self.breaker and not self.since and self.range != default.range else None),
            ("from", self.since if self.breaker else None),
            ("to", self.until if self.breaker and self.since else None),
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
        return replace(self, breaker=None, breaker_cluster=None, kind="command", range="1h", since=None, until=None)


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
            dcc.Interval(id="breakers-tick", interval=TICK_MS),
            html.H2("Breakers"),
            _controls(state, clusters),
            *([_history_panel(state)] if state.breaker and state.selected_cluster else []),
            dcc.Store(id="breakers-html"),
            html.Div(id="breakers-wall", style=_WALL),
            html.Div(id="breakers-pools", style=_WALL),
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
            html.Div([
                _labelled("Range", dcc.Dropdown(list(RANGES), None if state.since else state.range, id="breaker-range",
                                                clearable=False, placeholder="custom", style={"width": "7em"})),
                _labelled("or from", dcc.Input(id="breaker-from", value=state.since or "",
                                               placeholder="2026-11-25 17:00 (UTC)")),
                _labelled("to", dcc.Input(id="breaker-to", value=state.until or "", placeholder="now")),
                html.Button("Show", id="breaker-range-go"),
            ], style=_CONTROLS),
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


class SeriesCache:
    """The sparklines of every wall this dashboard process serves, by window and breaker, so no
    browser carries them to and fro each tick (on a 200-breaker wall that was most of an update).
    Shared by every open wall: two ticks of the same second agree. A new breaker's series is seeded
    from its history in the background (at most `MAX_SEEDS_PER_TICK` history reads at a time, each
    breaker once), never holding up a tick: on a 200-breaker wall, ticks that awaited their seeds
    piled up behind each other. A series whose newest point is older than its span is forgotten."""

    def __init__(self) -> None:
        self._by_window: dict[int, dict[str, sparkline.Series]] = {}
        self._seeding: set[tuple[int, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def update(self, client: QueryClient, wall: BreakersJson) -> dict[str, sparkline.Series]:
        """The wall's sparklines after this tick: kept series extended with the live rate; the
        breakers without one yet start seeding."""
        window_s, end_s = wall["window"], wall["end"] // 1_000_000
        kept = self._by_window.setdefault(window_s, {})
        current = {_key(b["cluster"], b["name"]): b for b in wall["breakers"]}
        for key, b in current.items():
            if key in kept:
                kept[key] = sparkline.extend(kept[key], end_s, b["rate"]["cluster"])
        self._start_seeding(client, window_s, [current[k] for k in current if k not in kept], end_s)
        self._forget(end_s)
        return {key: kept[key] for key in current if key in kept}

    def _start_seeding(self, client: QueryClient, window_s: int, new: list[BreakerJson], end_s: int) -> None:
        room = MAX_SEEDS_PER_TICK - len(self._seeding)
        for b in new:
            key = (window_s, _key(b["cluster"], b["name"]))
            if room <= 0:
                return
            if key not in self._seeding:
                room -= 1
                self._seeding.add(key)
                task = asyncio.get_running_loop().create_task(self._seed_one(client, key, b, end_s))
                self._tasks.add(task)  # held until done: the loop keeps only weak references
                task.add_done_callback(self._tasks.discard)

    async def _seed_one(self, client: QueryClient, key: tuple[int, str], b: BreakerJson, end_s: int) -> None:
        try:
            series = await _seed(client, b, end_s, key[0])
            self._by_window.setdefault(key[0], {}).setdefault(key[1], series)
        finally:
            self._seeding.discard(key)

    def _forget(self, end_s: int) -> None:
        for kept in self._by_window.values():
            for key in [k for k, series in kept.items() if not series or series[-1][0] < end_s - sparkline.SPAN_S]:
                del kept[key]


def render_wall(wall: BreakersJson, state: WallState, series: dict[str, sparkline.Series]) -> tuple[Any, str]:
    """({"wall": [tile HTML, …], "pools": [heading and tile HTML, …]}, status line) of one tick; the
    browser patches the tiles whose HTML changed (`PATCH_TILES`)."""
    end_s = wall["end"] // 1_000_000
    every = state.cluster is None

    def tile(b: BreakerJson) -> str:
        href = PATH + state.selecting(b["cluster"], b["name"], "command").query()
        return breaker_tile(b, series.get(_key(b["cluster"], b["name"]), []), end_s, href, every)

    def pool(p: ThreadPoolJson) -> str:
        return pool_tile(p, PATH + state.selecting(p["cluster"], p["name"], "threadpool").query(), every)

    tiles = [tile(b) for b in sort_breakers(wall["breakers"], state.sort)]
    if not tiles:
        tiles = [to_html(send_breakers("breakers-empty"))]
    volume = state.sort == "volume"
    pools = sorted(wall["threadPools"], key=lambda p: (-p["rate"]["cluster"] if volume else 0, p["name"], p["cluster"]))
    heading = '<h3 style="flex-basis: 100%">Thread pools</h3>'
    section = [heading, *(pool(p) for p in pools)] if pools else []
    ending = datetime.fromtimestamp(end_s, UTC).strftime("%H:%M:%S")
    found = f"{count(len(wall['breakers']), 'breaker')}, {count(len(pools), 'thread pool')}"
    status = f"{found}; {wall['window']} s window to {ending} UTC"
    return {"wall": tiles, "pools": section}, status


def register(app: Dash, client: QueryClient) -> None:
    series = SeriesCache()

    app.clientside_callback(PATCH_TILES, Output("breakers-wall", "title"), Input("breakers-html", "data"))  # type: ignore[no-untyped-call]

    @app.callback(
        Output("breakers-html", "data"),
        Output("breakers-status", "children"),
        Input("breakers-tick", "n_intervals"),
        State("breakers-state", "data"),
    )
    async def tick(_n: int | None, search: str | None) -> tuple[Any, ...]:
        state = WallState.parse(search or "")
        try:
            wall = await client.breakers(state.cluster, state.window)
        except QueryApiError as exc:  # keep the last tiles; say why they are stale
            return no_update, f"The query API answered {exc.status}: {exc.message}"
        except Exception as exc:  # the same for anything else; the details go to the log
            log.exception("breaker wall tick failed")
            return no_update, f"The wall could not be updated ({type(exc).__name__}); the server's log has the details."
        return render_wall(wall, state, series.update(client, wall))

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
        new = replace(state, range=chosen, since=None, until=None) if chosen else state
        if new == state:
            raise PreventUpdate
        return new.query()

    @app.callback(
        Output("breakers-url", "search", allow_duplicate=True),
        Input("breaker-range-go", "n_clicks"),
        State("breaker-from", "value"),
        State("breaker-to", "value"),
        State("breakers-state", "data"),
        prevent_initial_call=True,
    )
    async def choose_custom(clicks: int | None, since: str | None, until: str | None, search: str | None) -> str:
        state = WallState.parse(search or "")
        new = replace(state, since=(since or "").strip() or None, until=(until or "").strip() or None)
        if not clicks or new == state:
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
        try:
            start_s, end_s, step = history_span(state.range, state.since, state.until, int(time.time()) + 1)
            found = await client.breaker_history(
                state.selected_cluster, state.breaker, kind=state.kind,
                start_us=start_s * 1_000_000, end_us=end_s * 1_000_000, step=step,
            )  # fmt: skip
        except RangeError as exc:
            return no_update, str(exc)
        except QueryApiError as exc:
            return no_update, f"The query API answered {exc.status}: {exc.message}"
        return history_figure(found, start_s, end_s), ""
