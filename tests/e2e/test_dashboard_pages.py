"""The dashboard's pages as a user walks them, in a real headless Chromium against one seeded
`tracehouse serve`: attribute autocomplete, time presets and a custom range, a scatter dot opening
its trace, a refused search keeping its form, and a screenshot of every page saved as an artifact.
Every page of these tests fails on a browser console error."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.browser import checked_page, png_size, screenshot, screenshot_dir
from tests.e2e.server import Server, start_server
from tests.e2e.test_compat_apis import two_service_trace
from tests.e2e.test_dashboard_breakers import feed_shop_and_search
from tests.e2e.trace_shapes import MS, SpanSpec, TraceShape, send, shop_trace

pytestmark = pytest.mark.e2e
HOURS_AGO = 3  # the old trace: outside the last hour, inside the last six
SCREENSHOTS = ("map", "search", "trace", "service", "breakers", "breaker-history", "empty-search", "empty-map",
               "empty-breakers")  # fmt: skip

expect.set_options(timeout=20_000)  # the first render loads Dash's bundles


class Seeded:
    def __init__(self, server: Server, visa: TraceShape, amex: TraceShape, old: TraceShape, front: str) -> None:
        self.server, self.visa, self.amex, self.old, self.front = server, visa, amex, old, front


def _shop(brand: str, hours_ago: int = 0) -> TraceShape:
    shape = shop_trace()
    shape.by_name("Charge").attributes["card.brand"] = brand
    for span in shape.spans:
        span.start_ns -= hours_ago * 3600 * 10**9
        span.end_ns -= hours_ago * 3600 * 10**9
    return shape


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """Two shop traces (visa, amex) and one three hours old (diners), front → back + sqlite, a
    service that calls nobody and nobody calls, and breakers of two clusters; the tests only read."""
    server = start_server(tmp_path_factory.mktemp("pages") / "data", "--link-interval", "0.2")
    try:
        visa, amex, old = _shop("visa"), _shop("amex"), _shop("diners", HOURS_AGO)
        for shape in (visa, amex, old):
            send(server.otlp_http, shape)
        front = two_service_trace(server)
        t0 = time.time_ns() - 2_000 * MS
        send(server.otlp_http, TraceShape(os.urandom(16).hex(), [SpanSpec("lonely", "cron tick", t0, t0 + 3 * MS)]))
        feed_shop_and_search(server)
        while len(server.api("/api/v1/dependencies").json()["edges"]) < 4:  # bounded by the test timeout
            time.sleep(0.1)  # the linker runs every 0.2 s; nothing to await but its table
        yield Seeded(server, visa, amex, old, front)
    finally:
        server.stop()


def test_attribute_autocomplete_offers_keys_then_values(seeded: Seeded, page: Page) -> None:
    page.goto(f"{seeded.server.ui}/?lookback=1h")
    expect(page.locator("#search-results tr.trace-row")).to_have_count(4)  # visa, amex, front, lonely
    offered = page.locator("#search-attr-suggest .attr-suggestion")

    page.click("#search-attr")
    page.keyboard.type("card")
    expect(offered).to_have_text(["card.brand="])  # a seeded key, ready for its value
    offered.first.click()
    expect(page.locator("#search-attr")).to_have_value("card.brand=")
    expect(offered).to_have_count(2)  # the key's values (the old trace's is out of the hour)
    assert sorted(offered.all_text_contents()) == ["card.brand=amex", "card.brand=visa"]
    screenshot(page, "search-autocomplete", full_page=False)

    page.click("#search-attr")
    page.keyboard.press("Control+End")
    page.keyboard.type("v")
    expect(offered).to_have_text(["card.brand=visa"])
    offered.first.click()
    expect(page.locator("#search-attr")).to_have_value("card.brand=visa\n")
    expect(offered).to_have_count(0)  # a whole expression ends its line

    page.click("#search-go")
    page.wait_for_url(f"{seeded.server.ui}/?lookback=1h&attr=card.brand%3Dvisa&limit=20")
    results = page.locator("#search-results tr.trace-row")
    expect(results).to_have_count(1)
    expect(results.get_by_role("link")).to_have_attribute("href", f"/trace/{seeded.visa.trace_id}")

    page.click("#search-attr")
    page.keyboard.press("Control+End")
    page.keyboard.type("!http.st")  # the absence test offers keys too
    expect(offered).to_have_text(["!http.status_code"])

    # by keyboard: ↓ to the suggestions, Enter takes one, the caret is back in the box
    page.keyboard.press("ArrowDown")
    expect(offered.first).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#search-attr")).to_have_value("card.brand=visa\n!http.status_code\n")
    expect(page.locator("#search-attr")).to_be_focused()
    page.keyboard.type("card")
    expect(offered).to_have_text(["card.brand="])
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    expect(offered).to_have_count(2)
    expect(page.locator("#search-attr")).to_be_focused()
    page.keyboard.type("a")
    expect(offered).to_have_text(["card.brand=amex"])
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    expect(page.locator("#search-attr")).to_have_value("card.brand=visa\n!http.status_code\ncard.brand=amex\n")


def test_picking_a_service_offers_its_operations(seeded: Seeded, page: Page) -> None:
    """Before a search runs: the operation list follows the service picked (it was empty until
    the form had been submitted with that service)."""
    page.goto(f"{seeded.server.ui}/?lookback=1h")
    expect(page.locator("#search-results tr.trace-row")).to_have_count(4)
    page.click("#search-service")
    page.get_by_role("option", name="back", exact=True).click()
    page.click("#search-operation")
    # the open menu (the "errors only" checklist is a listbox too)
    operations = page.get_by_role("listbox").filter(has_not_text="errors only").get_by_role("option")
    expect(operations).to_have_text(["handle"])
    page.keyboard.press("Escape")
    page.click("#search-service")
    page.get_by_role("option", name="front", exact=True).click()
    page.click("#search-operation")
    expect(operations).to_have_text(["GET /", "SELECT", "call back"])


def test_time_presets_and_a_custom_range(seeded: Seeded, page: Page) -> None:
    page.goto(f"{seeded.server.ui}/?service=frontend&lookback=1h")
    results = page.locator("#search-results tr.trace-row")
    expect(results).to_have_count(2)
    page.evaluate("window.notReloaded = true")  # searching navigates inside the app
    page.click("#search-lookback")
    page.get_by_role("option", name="6h", exact=True).click()
    page.click("#search-go")
    page.wait_for_url(f"{seeded.server.ui}/?service=frontend&lookback=6h&limit=20")
    expect(results).to_have_count(3)  # and the one from three hours ago

    now = datetime.now(UTC)
    page.fill("#search-from", (now - timedelta(hours=HOURS_AGO + 1)).strftime("%Y-%m-%d %H:%M"))
    page.fill("#search-to", (now - timedelta(hours=HOURS_AGO - 1)).strftime("%Y-%m-%d %H:%M"))
    page.click("#search-go")
    page.wait_for_url(lambda url: "start=" in url and "end=" in url and "lookback" not in url)
    expect(results).to_have_count(1)
    expect(results.get_by_role("link")).to_have_attribute("href", f"/trace/{seeded.old.trace_id}")
    expect(page.locator("#search-lookback")).to_contain_text("custom range")

    page.click("#search-lookback")  # a preset again replaces the custom range
    page.get_by_role("option", name="1h", exact=True).click()
    expect(page.locator("#search-from")).to_have_value("")
    page.click("#search-go")
    page.wait_for_url(f"{seeded.server.ui}/?service=frontend&lookback=1h&limit=20")
    expect(results).to_have_count(2)
    assert page.evaluate("window.notReloaded") is True


def test_a_dot_of_the_scatter_opens_its_trace(seeded: Seeded, page: Page) -> None:
    page.goto(f"{seeded.server.ui}/?service=payments&attr={quote('card.brand=amex')}")
    dot = page.locator("#search-scatter path.point")
    expect(dot).to_have_count(1)
    box = dot.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_url(f"{seeded.server.ui}/trace/{seeded.amex.trace_id}")
    expect(page.locator("#trace-summary")).to_contain_text("10 spans, 3 services")


_CY = "document.querySelector('#service-map')._cyreg.cy"


def open_map(page: Page, ui: str) -> None:
    """The map with its graph drawn (Cytoscape draws on a canvas: the tests read its model)."""
    page.goto(f"{ui}/map?lookback=1h")
    expect(page.locator("#service-map canvas").first).to_be_visible()
    page.wait_for_function("() => document.querySelector('#service-map')?._cyreg?.cy?.edges().length >= 4")


def test_the_map_shows_isolated_services_and_an_edge_opens_its_calls(seeded: Seeded, page: Page) -> None:
    ui = seeded.server.ui
    open_map(page, ui)
    assert "lonely" in page.evaluate(f"() => {_CY}.nodes().map(n => n.id())")
    assert page.evaluate(f"() => {_CY}.$id('lonely').connectedEdges().length") == 0  # on the map all the same

    results = page.locator("#search-results tr.trace-row")
    page.evaluate(f"() => {_CY}.edges('[source = \"front\"][target = \"back\"]').emit('tap') && null")
    page.wait_for_url(f"{ui}/?service=back&parentService=front&lookback=1h")
    expect(results).to_have_count(1)
    expect(results.get_by_role("link")).to_have_attribute("href", f"/trace/{seeded.front}")
    expect(page.locator("#search-parent")).to_have_value("front")

    open_map(page, ui)  # service to service: only the calls of that edge
    page.evaluate(f"() => {_CY}.edges('[source = \"frontend\"][target = \"payments\"]').emit('tap') && null")
    page.wait_for_url(f"{ui}/?service=payments&parentService=frontend&lookback=1h")
    expect(results).to_have_count(2)  # visa and amex; the old one is out of the hour

    open_map(page, ui)  # to a database: the caller's client spans naming it
    page.evaluate(f"() => {_CY}.edges('[source = \"front\"][target = \"sqlite\"]').emit('tap') && null")
    page.wait_for_url(f"{ui}/?service=front&peer=sqlite&lookback=1h")
    expect(results).to_have_count(1)
    expect(page.locator("#search-peer")).to_have_value("sqlite")


def test_a_refused_search_keeps_its_form(seeded: Seeded, page: Page) -> None:
    page.goto(f"{seeded.server.ui}/?minDuration=soon&lookback=1h")
    expect(page.locator("#search-problem")).to_contain_text("The query API refused the search (400): minDuration")
    expect(page.locator("#search-min")).to_have_value("soon")  # there to be fixed
    page.fill("#search-min", "1ms")
    page.click("#search-go")
    expect(page.locator("#search-results tr.trace-row")).to_have_count(4)
    page.goto(f"{seeded.server.ui}/?start=yesterday")
    expect(page.locator("#search-problem")).to_contain_text("start: 'yesterday' is not a time")


def test_a_screenshot_of_every_page(seeded: Seeded, page: Page, browser: Browser, tmp_path: Path) -> None:
    ui = seeded.server.ui
    for name in SCREENSHOTS:
        (screenshot_dir() / f"{name}.png").unlink(missing_ok=True)

    page.goto(f"{ui}/map")
    expect(page.locator("#service-map canvas").first).to_be_visible()
    nodes = len(seeded.server.api("/api/v1/dependencies").json()["nodes"])
    page.wait_for_function(f"() => document.querySelector('#service-map')._cyreg.cy.nodes().length === {nodes}")
    screenshot(page, "map")
    page.goto(f"{ui}/?lookback=1h")
    expect(page.locator("#search-results tr.trace-row")).to_have_count(4)
    expect(page.locator("#search-scatter path.point")).to_have_count(4)  # the rows may come first
    screenshot(page, "search")
    page.goto(f"{ui}/trace/{seeded.visa.trace_id}")
    expect(page.locator("#trace-view")).to_have_attribute("data-ready", "true")
    screenshot(page, "trace")
    page.goto(f"{ui}/service/frontend?lookback=1h")
    expect(page.locator("#service-operations")).to_contain_text("GET /checkout")
    screenshot(page, "service")
    page.goto(f"{ui}/breakers?window=1h")
    expect(page.locator(".breaker-tile")).to_have_count(3)
    screenshot(page, "breakers")
    page.goto(f"{ui}/breakers?window=1h&breaker=inventory.reserve&breakerCluster=shop")
    expect(page.locator("#breaker-history-graph .scatterlayer .trace")).to_have_count(5)
    screenshot(page, "breaker-history")

    empty = start_server(tmp_path / "empty")
    try:
        with checked_page(browser, viewport={"width": 1300, "height": 900}) as fresh:
            for path, element, name in (("/", "#search-empty", "empty-search"), ("/map", "#map-empty", "empty-map"),
                                        ("/breakers", "#breakers-empty", "empty-breakers")):  # fmt: skip
                fresh.goto(empty.ui + path)
                expect(fresh.locator(element)).to_be_visible()
                screenshot(fresh, name)
    finally:
        empty.stop()

    for name in SCREENSHOTS:
        path = screenshot_dir() / f"{name}.png"
        assert path.is_file(), f"no screenshot {path}"
        width, height = png_size(path)
        assert (width, height >= 600) == (1300, True), (path, width, height)
        assert path.stat().st_size > 15_000, f"{path} is nearly blank ({path.stat().st_size} bytes)"
