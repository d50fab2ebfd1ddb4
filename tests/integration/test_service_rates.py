"""The service page and the service map over the real query API and embedded store (in process,
through an ASGI client): rates over the time a service has sent spans, not over the whole lookback;
the RED charts' newest minute and their minutes without calls."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx
import pytest

from tests.integration.test_red import MINUTE_NS, mid_minute, running_rate
from tests.integration.test_search import MS, S, add_trace
from tracehouse.dashboard.pages import service, service_map
from tracehouse.query import build_query_app
from tracehouse.query.client import QueryClient
from tracehouse.storage import ClickHouseStore, SpanBatch

pytestmark = pytest.mark.integration

NEW_S = 180  # gateway → orders began three minutes ago, 2 calls/s
OLD_S = 65 * 60  # legacy → billing, a call each 10 s, has run longer than the hour


class AsgiClient(QueryClient):
    """The dashboard's client of the query API, talking to the app in process."""

    def __init__(self, store: ClickHouseStore) -> None:
        super().__init__("http://tracehouse")
        transport = httpx.ASGITransport(app=build_query_app(store, dict))
        self._http = httpx.AsyncClient(transport=transport, base_url="http://tracehouse")


@pytest.fixture
def seeded(store: ClickHouseStore) -> tuple[ClickHouseStore, int]:
    now = mid_minute(3, 45)  # the running minute has calls already, and 15 s left to draw the pages
    batch = SpanBatch()
    for at in range(now - NEW_S * 10**9, now, 500 * MS):
        add_trace(batch, at, [
            S("gateway", "POST /orders", 0, 20, None), S("gateway", "POST", 1, 18, 0, kind="Client"),
            S("orders", "POST /orders", 2, 15, 1),
        ])  # fmt: skip
    for at in range(now - OLD_S * 10**9, now, 10_000 * MS):
        add_trace(batch, at, [S("legacy", "tick", 0, 5, None), S("billing", "charge", 1, 3, 0)])
    store.write(batch)
    store.link((now - OLD_S * 10**9) // MINUTE_NS * MINUTE_NS, now + MINUTE_NS)
    return store, now


def find(component: Any, component_id: str) -> Any:
    """The component of that id in a Dash layout."""
    if getattr(component, "id", None) == component_id:
        return component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list) else [children]:
        if child is not None and not isinstance(child, str | int | float):
            found = find(child, component_id)
            if found is not None:
                return found
    return None


def edge_rates(store: ClickHouseStore, lookback: str) -> tuple[dict[tuple[str, str], float], int, int]:
    """The map's edges' calls/s, and the times (ns) before and after it was drawn."""
    before = time.time_ns()
    layout = asyncio.run(service_map.page(AsgiClient(store), f"?lookback={lookback}"))
    after = time.time_ns()
    rates = {}
    for element in find(layout, "service-map").elements:
        data = element["data"]
        if "source" in data:
            rate = re.match(r"([0-9.e-]+) calls/s", data["label"])
            assert rate, data["label"]
            rates[(data["source"], data["target"])] = float(rate[1])
    return rates, before, after


def orders_page(store: ClickHouseStore) -> tuple[Any, int, int]:
    """The service page of orders over the last hour, and the times (ns) before and after it was drawn."""
    before = time.time_ns()
    layout = asyncio.run(service.page(AsgiClient(store), "orders", "?lookback=1h"))
    return layout, before, time.time_ns()


def over(calls: int, first_ns: int, before_ns: int, after_ns: int) -> tuple[float, float]:
    """Bounds of a rate of `calls` over the seconds from `first_ns` to a now between the two,
    widened by 0.5 % either way (the page shows three digits)."""
    return calls / ((after_ns - first_ns) / 1e9) * 0.995, calls / ((before_ns - first_ns) / 1e9) * 1.005


@pytest.mark.parametrize("lookback", ["1h", "6h"])  # 6h: steps of 5 minutes, the first minute found within one
def test_an_edge_of_the_map_has_the_rate_of_the_minutes_it_has_calls(
    seeded: tuple[ClickHouseStore, int], lookback: str
) -> None:
    store, now = seeded
    rates, before, after = edge_rates(store, lookback)
    # 360 calls over the seconds from the first minute of gateway's spans to now (180-240 s and the
    # test's own), not over the hour (0.1/s) or six (0.017/s).
    low, high = over(NEW_S * 2, (now - NEW_S * 10**9) // MINUTE_NS * MINUTE_NS, before, after)
    assert low <= rates[("gateway", "orders")] <= high
    assert 0.09 < rates[("legacy", "billing")] <= 0.1  # older than the window, or 65 minutes in six hours


def test_the_service_page_rates_its_operations_over_the_minutes_it_has_calls(
    seeded: tuple[ClickHouseStore, int],
) -> None:
    store, now = seeded
    layout, before, after = orders_page(store)
    rows = find(layout, "service-operations").children[1].children
    cells = [[cell.children for cell in row.children] for row in rows]
    assert [(c[0], c[1], c[2]) for c in cells] == [("POST /orders", "Server", NEW_S * 2)]
    low, high = over(NEW_S * 2, (now - NEW_S * 10**9) // MINUTE_NS * MINUTE_NS, before, after)
    assert low <= float(cells[0][3]) <= high  # about 1.7/s, not 0.1


def test_the_charts_end_on_the_running_minute_and_skip_minutes_without_calls(
    seeded: tuple[ClickHouseStore, int],
) -> None:
    store, now = seeded
    layout, before, after = orders_page(store)
    figure = find(layout, "service-rate").figure
    minutes = [int(x.timestamp()) * 10**9 for x in figure.data[0].x]
    rate = figure.data[0].y
    minute = now // MINUTE_NS * MINUTE_NS
    calls = sum(1 for at in range(now - NEW_S * 10**9, now, 500 * MS) if at >= minute)
    low, high = running_rate(calls, minute, before, after)
    assert low <= rate[minutes.index(minute)] <= high  # the running minute's calls over its seconds gone: ~2/s
    empty = minutes.index((now - NEW_S * 10**9) // MINUTE_NS * MINUTE_NS)  # orders' first minute
    assert set(rate[:empty]) == {0.0}  # minutes before orders: no calls, a rate of 0
    assert 0 not in rate[empty:]
    for chart in ("service-latency", "service-errors"):
        for series in find(layout, chart).figure.data:
            assert series.y[:empty] == (None,) * empty, chart  # a gap, not 0 ms or 0 %
            assert None not in series.y[empty:], chart


def api(store: ClickHouseStore, path: str, params: dict[str, str]) -> tuple[dict[str, Any], int, int]:
    """A query API answer, and the times (ns) before and after it."""

    async def get() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=build_query_app(store, dict))
        async with httpx.AsyncClient(transport=transport, base_url="http://tracehouse") as http:
            answer = await http.get(path, params=params)
            answer.raise_for_status()
            return dict(answer.json())

    before = time.time_ns()
    return asyncio.run(get()), before, time.time_ns()


def test_the_operations_api_rates_over_the_minutes_the_service_has_calls(
    seeded: tuple[ClickHouseStore, int],
) -> None:
    store, now = seeded
    hour_ago = str((now - 3600 * 10**9) // 1000)
    found, before, after = api(store, "/api/v1/metrics/operations", {"service": "orders", "start": hour_ago})
    (operation,) = found["operations"]
    low, high = over(NEW_S * 2, (now - NEW_S * 10**9) // MINUTE_NS * MINUTE_NS, before, after)
    assert low <= operation["rate"] <= high  # ~1.7/s, not 360 calls over the hour (0.1/s)
    # A range that has ended: over its seconds since orders' first minute, now is not part of it.
    first = (now - NEW_S * 10**9) // MINUTE_NS * MINUTE_NS
    ended = {"service": "orders", "start": hour_ago, "end": str((first + 2 * MINUTE_NS) // 1000)}
    found, _, _ = api(store, "/api/v1/metrics/operations", ended)
    (operation,) = found["operations"]
    assert operation["rate"] == pytest.approx(operation["calls"] / 120)


def test_the_dependencies_api_rates_an_edge_over_the_minutes_both_services_have_calls(
    seeded: tuple[ClickHouseStore, int],
) -> None:
    store, now = seeded
    found, before, after = api(store, "/api/v1/dependencies", {"start": str((now - 3600 * 10**9) // 1000)})
    rates = {(edge["parent"], edge["child"]): edge["rate"] for edge in found["edges"]}
    low, high = over(NEW_S * 2, (now - NEW_S * 10**9) // MINUTE_NS * MINUTE_NS, before, after)
    assert low <= rates[("gateway", "orders")] <= high
    assert 0.09 < rates[("legacy", "billing")] <= 0.1  # older than the hour: its calls over the hour


def test_an_edge_is_rated_up_to_where_the_linker_has_read(seeded: tuple[ClickHouseStore, int]) -> None:
    # The linker runs once a minute; a call it has not read is not a link yet, so the seconds since
    # its run are not the edge's either (they were: a new service's edges read low, half at 2 minutes).
    store, now = seeded
    hour_ago = now - 3600 * 10**9
    assert store.dependencies(hour_ago, now + MINUTE_NS).linked_until_s == 0  # every insert was read
    read_before = time.time_ns()
    late = SpanBatch()
    add_trace(late, now, [S("gateway", "POST /orders", 0, 20, None), S("gateway", "POST", 1, 18, 0, kind="Client"),
                          S("orders", "POST /orders", 2, 15, 1)])  # fmt: skip
    store.write(late)
    linked_until_s = store.dependencies(hour_ago, now + MINUTE_NS).linked_until_s
    assert now / 1e9 <= linked_until_s <= read_before / 1e9  # the fixture's linking run

    found, _, _ = api(store, "/api/v1/dependencies", {"start": str(hour_ago // 1000)})
    (edge,) = [edge for edge in found["edges"] if (edge["parent"], edge["child"]) == ("gateway", "orders")]
    assert edge["calls"] == NEW_S * 2  # the late call is not linked
    first_s = (now - NEW_S * 10**9) // MINUTE_NS * MINUTE_NS / 1e9
    assert edge["rate"] == pytest.approx(NEW_S * 2 / (linked_until_s - first_s), rel=1e-7)
