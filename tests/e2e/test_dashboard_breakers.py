"""The breaker wall in a real headless Chromium against a real `tracehouse serve` fed with real
breaker reports (``POST /v1/breakers``): tiles with the right counts, error % and circuit state,
live updates without a reload, the cluster selector writing the URL, a tile opening its history."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from tests.e2e.browser import screenshot
from tests.e2e.server import Server
from tracehouse.instrumentation.breakers.histogram import bucket_of
from tracehouse.instrumentation.breakers.wire import BreakerReport, BreakerSample

pytestmark = pytest.mark.e2e
GREEN, RED = "rgb(0, 128, 0)", "rgb(255, 0, 0)"
LATENCY_MS = 20.0  # every call of a sample lands in this one histogram bucket
POOL_GAUGES = {
    "currentActiveCount": 3,
    "currentQueueSize": 1,
    "currentPoolSize": 8,
    "propertyValue_queueSizeRejectionThreshold": 5,
}

expect.set_options(timeout=20_000)  # the first render loads Dash's bundles; ticks are 1 s apart


def command(name: str, second: int, state: str = "CLOSED", **counts: int) -> BreakerSample:
    calls = sum(n for key, n in counts.items() if key != "short_circuited")
    return BreakerSample(
        kind="command",
        name=name,
        group=name.split(".")[0],
        second=second,
        state=state,
        counts=counts,
        latency={bucket_of(LATENCY_MS): calls},
        latency_sum_ms=LATENCY_MS * calls,
    )


def pool(name: str, second: int, executed: int) -> BreakerSample:
    return BreakerSample(
        kind="threadpool", name=name, group=name, second=second, counts={"success": executed},
        max_concurrency=4, gauges=POOL_GAUGES,
    )  # fmt: skip


def report(server: Server, cluster: str, instance: str, *samples: BreakerSample) -> None:
    """One report as a service's reporter sends it; returns once the collector stored it."""
    body = BreakerReport(service=cluster, instance=instance, cluster=cluster, samples=samples).to_json()
    answer = httpx.post(f"{server.otlp_http}/v1/breakers", json=body, timeout=30)
    assert answer.status_code == 200, answer.text


def a_second_ago() -> int:
    """A whole second already over: the breakers API's window (ending at the current second)
    includes it."""
    return int(time.time()) - 1


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    opened = browser.new_page(viewport={"width": 1300, "height": 1000})
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(str(error)))
    opened.on("console", lambda message: _console_error(message, problems))
    yield opened
    opened.close()
    assert problems == []


def _console_error(message: ConsoleMessage, problems: list[str]) -> None:
    if message.type == "error":
        problems.append(message.text)


def tile(page: Page, name: str) -> Any:
    return page.locator(f".breaker-tile[data-breaker='{name}']")


def feed_shop_and_search(server: Server) -> None:
    second = a_second_ago() - 2
    report(
        server, "shop", "checkout-0:80",
        command("payments.charge", second, success=50, failure=4, timeout=2, short_circuited=3, bad_request=1,
                semaphore_rejected=1),
        command("inventory.reserve", second, state="OPEN", success=10, failure=30),
        pool("payments", second, executed=90),
    )  # fmt: skip
    report(server, "shop", "checkout-1:80", command("payments.charge", second, success=40, failure=2,
                                                    thread_pool_rejected=1))  # fmt: skip
    report(server, "search", "search-0:80", command("search.query", second, success=200))


def test_the_wall_shows_a_tile_per_breaker(server: Server, page: Page) -> None:
    feed_shop_and_search(server)
    page.goto(f"{server.ui}/breakers?window=1m")
    tiles = page.locator(".breaker-tile")
    expect(tiles).to_have_count(3)
    # error then volume: the open breaker first, the healthy busy one last
    names = ["inventory.reserve · shop", "payments.charge · shop", "search.query · search"]
    expect(page.locator(".breaker-tile .tile-name")).to_have_text(names)

    charge = tile(page, "payments.charge")
    counters = {"success": "90", "short-circuited": "3", "bad-request": "1", "timeout": "2", "rejected": "2",
                "failure": "6"}  # fmt: skip
    for key, value in counters.items():
        expect(charge.locator(f".count-{key}")).to_have_text(value)
    expect(charge.locator(".count-success")).to_have_css("color", GREEN)
    expect(charge.locator(".count-failure")).to_have_css("color", RED)
    expect(charge.locator(".error-percentage")).to_have_text("10.0 %")  # 10 errors of 100 requests
    expect(charge.locator(".rate-cluster")).to_have_text("Cluster: 1.7/s")  # 100 in a 1-minute window
    expect(charge.locator(".rate-host")).to_have_text("Host: 0.8/s")  # on two hosts
    expect(charge.locator(".circuit-state")).to_have_text("Closed")
    expect(charge.locator(".breaker-circle")).to_have_css("background-color", GREEN)
    for cell, value in {"hosts": "2", "median": "20ms", "mean": "20ms", "90th": "20ms", "99_5th": "20ms"}.items():
        expect(charge.locator(f".latency .cell-{cell}")).to_have_text(value)

    reserve = tile(page, "inventory.reserve")
    expect(reserve).to_have_attribute("data-open", "true")
    expect(reserve.locator(".circuit-state")).to_have_text("Open")
    expect(reserve.locator(".circuit-state span")).to_have_css("color", RED)
    expect(reserve.locator(".breaker-circle")).to_have_css("background-color", RED)
    expect(reserve.locator(".error-percentage")).to_have_text("75.0 %")
    expect(tile(page, "search.query").locator(".breaker-circle")).to_have_css("background-color", GREEN)

    payments = page.locator(".pool-tile[data-pool='payments']")
    gauges = {"active": "3", "queued": "1", "pool-size": "8", "max-active": "4", "executions": "90", "queue-size": "5"}
    for cell, value in gauges.items():
        expect(payments.locator(f".cell-{cell}")).to_have_text(value)
    screenshot(page, "breakers-wall-counters")


def test_a_tile_follows_new_stats_without_a_reload(server: Server, page: Page) -> None:
    report(server, "shop", "checkout-0:80", command("payments.charge", a_second_ago() - 2, success=5))
    page.goto(f"{server.ui}/breakers?cluster=shop&window=1m")
    charge = tile(page, "payments.charge")
    expect(charge.locator(".count-success")).to_have_text("5")
    expect(charge.locator(".circuit-state")).to_have_text("Closed")
    page.evaluate("window.notReloaded = true")

    report(server, "shop", "checkout-0:80", command("payments.charge", a_second_ago(), success=7))
    expect(charge.locator(".count-success")).to_have_text("12")

    report(server, "shop", "checkout-1:80", command("payments.charge", a_second_ago(), state="OPEN", failure=20))
    expect(charge.locator(".circuit-state")).to_have_text("Open 1 / Closed 1")
    expect(charge.locator(".error-percentage")).to_have_text("62.5 %")  # 20 of 32
    expect(charge.locator(".breaker-circle")).to_have_css("background-color", RED)
    assert page.evaluate("window.notReloaded") is True


def test_selecting_a_cluster_writes_the_url(server: Server, page: Page) -> None:
    feed_shop_and_search(server)
    page.goto(f"{server.ui}/?lookback=1h")
    page.click("#nav-breakers")
    page.wait_for_url(f"{server.ui}/breakers")
    expect(page.locator("#breakers-status")).to_contain_text("s window to")
    page.goto(f"{server.ui}/breakers?window=1m")
    expect(page.locator(".breaker-tile")).to_have_count(3)
    page.evaluate("window.notReloaded = true")

    page.click("#breakers-cluster")
    page.get_by_role("option", name="shop", exact=True).click()
    page.wait_for_url(f"{server.ui}/breakers?cluster=shop&window=1m")
    names = page.locator(".breaker-tile .tile-name")
    expect(names).to_have_text(["inventory.reserve", "payments.charge"])  # the open one first

    page.click("#breakers-sort")
    page.get_by_role("option", name="Volume", exact=True).click()
    page.wait_for_url(f"{server.ui}/breakers?cluster=shop&window=1m&sort=volume")
    expect(names).to_have_text(["payments.charge", "inventory.reserve"])  # 100 requests, then 40

    page.click("#breakers-cluster")
    page.get_by_role("option", name="All clusters", exact=True).click()
    page.wait_for_url(f"{server.ui}/breakers?window=1m&sort=volume")
    expect(names).to_have_text(["search.query · search", "payments.charge · shop", "inventory.reserve · shop"])
    assert page.evaluate("window.notReloaded") is True

    # the URL is the whole state: opened afresh it shows the same wall
    page.goto(f"{server.ui}/breakers?cluster=search&window=1m&sort=alpha")
    expect(names).to_have_text(["search.query"])
    expect(page.locator("#breakers-cluster")).to_contain_text("search")
    expect(page.locator("#breakers-sort")).to_contain_text("Alphabetical")
    page.goto(f"{server.ui}/breakers?cluster=nowhere")
    expect(page.locator("#breakers-empty")).to_contain_text("No breaker stats in this window.")
    expect(page.locator("#breakers-cluster")).to_contain_text("nowhere")


def test_clicking_a_tile_shows_its_history(server: Server, page: Page) -> None:
    end = a_second_ago()
    for second in range(end - 5, end + 1):
        state = "OPEN" if second == end else "CLOSED"  # the circuit opened in the last second
        report(server, "shop", "checkout-0:80", command("payments.charge", second, state, success=9, failure=1),
               pool("payments", second, executed=10))  # fmt: skip
    page.goto(f"{server.ui}/breakers?window=1m")
    tile(page, "payments.charge").click()
    page.wait_for_url(f"{server.ui}/breakers?window=1m&breaker=payments.charge&breakerCluster=shop")
    graph = page.locator("#breaker-history-graph")
    expect(graph.locator(".scatterlayer .trace")).to_have_count(5)  # rate, error %, open, median, 99th
    expect(page.locator("#breaker-history")).to_contain_text("History of breaker payments.charge (shop)")
    screenshot(page, "breakers-history-open")
    assert plotted(page) == {"requests": 60, "error %": [10.0], "median": [LATENCY_MS], "open markers": 1}

    # any range, typed in UTC: two minutes around the samples, one point a second
    page.fill("#breaker-from", _utc(end - 60))
    page.fill("#breaker-to", _utc(end + 60))
    page.click("#breaker-range-go")
    page.wait_for_url(re.compile(r".*&from=.*&to=.*"))
    expect(page.locator("#breaker-range")).to_contain_text("custom")
    figure = "document.querySelector('#breaker-history-graph .js-plotly-plot')"
    page.wait_for_function(f"() => {figure}?.data?.[0]?.x?.length === 120")
    assert plotted(page) == {"requests": 60, "error %": [10.0], "median": [LATENCY_MS], "open markers": 1}
    page.fill("#breaker-from", "soon")
    page.click("#breaker-range-go")
    message = "from: 'soon' is not a time; write 2026-11-25 17:00 (UTC)"
    expect(page.locator("#breaker-history-error")).to_have_text(message)

    page.click("#breaker-history-close")
    page.wait_for_url(f"{server.ui}/breakers?window=1m")
    expect(page.locator("#breaker-history")).to_have_count(0)

    page.locator(".pool-tile[data-pool='payments']").click()
    page.wait_for_url(re.compile(r".*breaker=payments&breakerCluster=shop&kind=threadpool$"))
    expect(page.locator("#breaker-history")).to_contain_text("History of thread pool payments (shop)")
    expect(graph.locator(".scatterlayer .trace")).to_have_count(2)  # executions/s, rejected %


def plotted(page: Page) -> dict[str, Any]:
    """What the history figure holds: requests (Σ rate × step), and the distinct non-gap error %
    and median values."""
    traces: list[dict[str, Any]] = page.evaluate(
        "() => document.querySelector('#breaker-history-graph .js-plotly-plot').data"
        ".map(t => ({name: t.name, x: t.x, y: t.y}))"
    )
    by_name = {t["name"]: t for t in traces}
    times = by_name["rate"]["x"]
    step = (_epoch(times[1]) - _epoch(times[0])) if len(times) > 1 else 1.0
    return {
        "requests": round(sum(by_name["rate"]["y"]) * step),
        "error %": sorted({y for y in by_name["error %"]["y"] if y is not None}),
        "median": sorted({round(y) for y in by_name["median"]["y"] if y is not None}),
        "open markers": len(by_name["circuit open"]["x"]),
    }


def _utc(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()
