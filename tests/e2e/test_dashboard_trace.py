"""The trace page in a real headless Chromium against a real `tracehouse serve` fed with OTLP/JSON
posts: the span tree (collapse, expand, state in the URL), services, errors, the critical path and
clock-skew warnings as the API reports them, span detail, search, the JSON download, and a
10,000-span trace that becomes interactive with only a window of rows in the DOM."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Locator, Page, expect

from tests.e2e.browser import screenshot
from tests.e2e.server import Server, start_server
from tests.e2e.trace_shapes import TraceShape, send, shop_trace, wide_trace

pytestmark = pytest.mark.e2e
WIDE_SPANS = 10_000
MAX_ROWS_IN_DOM = 200  # a window of rows: the viewport's ~30 plus margins, never the trace

expect.set_options(timeout=20_000)  # the first render loads Dash's bundles


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module; the tests only read from it."""
    running = start_server(tmp_path_factory.mktemp("trace-page") / "data")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def shop(seeded: Server) -> TraceShape:
    shape = shop_trace()
    send(seeded.otlp_http, shape)
    return shape


@pytest.fixture(scope="module")
def wide(seeded: Server) -> TraceShape:
    shape = wide_trace(WIDE_SPANS)
    send(seeded.otlp_http, shape)
    return shape


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    opened = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(str(error)))
    opened.on("console", lambda message: _console_error(message, problems))
    yield opened
    opened.close()
    assert problems == []


def _console_error(message: ConsoleMessage, problems: list[str]) -> None:
    if message.type == "error":
        problems.append(message.text)


def open_trace(page: Page, server: Server, trace_id: str, query: str = "") -> None:
    page.goto(f"{server.ui}/trace/{trace_id}{query}")
    expect(page.locator("#trace-view")).to_have_attribute("data-ready", "true")


def rows(page: Page) -> Locator:
    return page.locator("#waterfall .tv-row")


def row(page: Page, span_id: str) -> Locator:
    return page.locator(f"#waterfall .tv-row[data-span-id='{span_id}']")


def top_to_bottom(page: Page, of_row: str) -> list[str]:
    """``of_row`` (a JS expression of the row ``r``) for each row in the DOM, top to bottom."""
    script = f"rows => rows.sort((a, b) => a.dataset.pos - b.dataset.pos).map(r => {of_row})"
    return list(rows(page).evaluate_all(script))


def shown_names(page: Page) -> list[str]:
    """The rows' "service: operation" labels, top to bottom."""
    return top_to_bottom(page, "r.querySelector('.tv-name').textContent")


def ids_with(page: Page, css_class: str) -> set[str]:
    return set(page.locator(f"#waterfall .tv-row.{css_class}").evaluate_all("rows => rows.map(r => r.dataset.spanId)"))


def api_trace(server: Server, trace_id: str) -> dict[str, Any]:
    answer = server.api(f"/api/v1/traces/{trace_id}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


SHOP_ORDER = [
    "frontend: GET /checkout",
    "frontend: POST charge",
    "payments: Charge",
    "frontend: load profile",
    "frontend: POST place-order",
    "checkout: PlaceOrder",
    "checkout: reserve stock",
    "checkout: INSERT orders",
    "frontend: render",
    "frontend: audit",
]


def test_the_waterfall_shows_the_tree_services_errors_critical_path_and_skew(
    seeded: Server, shop: TraceShape, page: Page
) -> None:
    body = api_trace(seeded, shop.trace_id)
    open_trace(page, seeded, shop.trace_id)
    expect(page.locator("#trace-summary")).to_have_text("10 spans, 3 services, 100.000 ms, 2 errors")
    expect(rows(page)).to_have_count(10)
    assert shown_names(page) == SHOP_ORDER
    assert top_to_bottom(page, "r.dataset.depth") == ["0", "1", "2", "1", "1", "2", "3", "3", "1", "2"]

    legend = page.locator("#trace-legend .legend-service")
    expect(legend).to_have_text(["checkout", "frontend", "payments"])
    payments_colour = legend.nth(2).locator("span").evaluate("s => getComputedStyle(s).backgroundColor")
    charge = row(page, shop.by_name("Charge").span_id)
    expect(charge.locator(".tv-bar")).to_have_css("background-color", payments_colour)
    expect(row(page, shop.by_name("PlaceOrder").span_id).locator(".tv-bar")).not_to_have_css(
        "background-color", payments_colour
    )

    assert ids_with(page, "tv-error") == {shop.by_name("POST charge").span_id, shop.by_name("Charge").span_id}
    expect(charge.locator(".tv-badge-error")).to_have_attribute("title", "card declined")

    on_path = {s["spanId"] for s in body["spans"] if s["onCriticalPath"]}
    assert shop.by_name("load profile").span_id not in on_path  # the shape's premise, so the check below can fail
    assert ids_with(page, "tv-critical") == on_path
    segments = page.locator("#waterfall .tv-cp").count()
    assert segments == len(body["criticalPath"])

    skewed = row(page, shop.by_name("PlaceOrder").span_id).locator(".tv-badge-skew")
    expect(skewed).to_have_attribute("title", re.compile(r"^clock skew: moved -\d+\.\d+ ms"))
    expect(page.locator("#waterfall .tv-badge-skew")).to_have_count(1)
    screenshot(page, "trace-shop")


def test_collapse_hides_the_subtree_expand_restores_it_and_the_url_keeps_it(
    seeded: Server, shop: TraceShape, page: Page
) -> None:
    order = shop.by_name("POST place-order").span_id
    open_trace(page, seeded, shop.trace_id)
    expect(rows(page)).to_have_count(10)
    row(page, order).locator(".tv-toggle").click()
    expect(rows(page)).to_have_count(7)
    assert "checkout: PlaceOrder" not in shown_names(page)
    expect(row(page, order).locator(".tv-badge-hidden")).to_have_text("+3")
    page.wait_for_url(f"**/trace/{shop.trace_id}?collapsed={order}")

    page.reload()  # the state comes back from the URL
    expect(page.locator("#trace-view")).to_have_attribute("data-ready", "true")
    expect(rows(page)).to_have_count(7)
    row(page, order).locator(".tv-toggle").click()
    expect(rows(page)).to_have_count(10)
    assert shown_names(page) == SHOP_ORDER
    page.wait_for_url(f"**/trace/{shop.trace_id}")

    page.click("#trace-collapse-all")
    expect(rows(page)).to_have_count(1)
    expect(page.locator("#waterfall .tv-badge-hidden")).to_have_text("+9")
    page.wait_for_url("**?collapsed=all")
    page.click("#trace-expand-all")
    expect(rows(page)).to_have_count(10)


def test_clicking_a_span_shows_its_detail_and_puts_it_in_the_url(seeded: Server, shop: TraceShape, page: Page) -> None:
    payment = shop.by_name("Charge")
    open_trace(page, seeded, shop.trace_id)
    row(page, payment.span_id).click()
    detail = page.locator("#span-detail")
    expect(detail).to_be_visible()
    expect(row(page, payment.span_id)).to_have_class(re.compile(r"\btv-selected\b"))
    expect(page.locator("#span-attributes tr")).to_have_text(["card.brandvisa"])
    expect(page.locator("#span-resource")).to_contain_text("host.namepayments-0")
    overview = page.locator("#span-overview")
    for label, value in [("Kind", "Server"), ("Status", "Error: card declined"), ("Duration", "26 ms"),
                         ("Span ID", payment.span_id), ("Parent", "frontend: POST charge")]:  # fmt: skip
        expect(overview.locator("tr", has_text=label).locator("td")).to_contain_text(value)
    expect(overview.locator("tr", has_text="Start").locator("td")).to_contain_text("+12 ms")
    exception = page.locator("#span-events .tv-exception")
    expect(exception.locator(".tv-exception-title")).to_have_text("payments.gateway.CardDeclined: card declined")
    expect(exception.locator(".tv-stack")).to_contain_text('File "payments/gateway.py", line 88, in charge')
    expect(exception.locator(".tv-event-head")).to_contain_text("+18 ms exception")
    page.wait_for_url(f"**/trace/{shop.trace_id}?span={payment.span_id}")

    page.reload()  # the selection comes back from the URL
    expect(page.locator("#span-overview")).to_contain_text(payment.span_id)
    page.locator("#span-overview a.tv-goto").click()  # the parent, in this trace
    expect(page.locator("#span-overview")).to_contain_text(shop.by_name("POST charge").span_id)
    page.wait_for_url(f"**?span={shop.by_name('POST charge').span_id}")

    row(page, shop.by_name("PlaceOrder").span_id).click()
    expect(detail.locator(".tv-warning")).to_contain_text("clock skew: moved")
    page.keyboard.press("ArrowLeft")  # the keyboard: collapse the selected span, expand it, move down
    expect(rows(page)).to_have_count(8)
    page.keyboard.press("ArrowRight")
    expect(rows(page)).to_have_count(10)
    page.keyboard.press("ArrowDown")
    expect(page.locator("#span-overview")).to_contain_text(shop.by_name("reserve stock").span_id)
    page.keyboard.press("ArrowUp")
    expect(page.locator("#span-events")).to_contain_text("order validated")

    render = shop.by_name("render")
    row(page, render.span_id).click()
    linked_trace, linked_span = render.links[0]
    link = page.locator("#span-links a")
    expect(link).to_have_attribute("href", f"/trace/{linked_trace}?span={linked_span}")
    page.click("#span-detail-close")
    expect(detail).to_be_hidden()
    page.wait_for_url(f"**/trace/{shop.trace_id}")
    row(page, render.span_id).click()
    link.click()  # in-app navigation to the linked trace (not stored here)
    page.wait_for_url(f"**/trace/{linked_trace}?span={linked_span}")
    expect(page.locator("main")).to_contain_text("Not found.")


def test_search_highlights_the_matching_rows_and_jumps_to_them(seeded: Server, shop: TraceShape, page: Page) -> None:
    order = shop.by_name("POST place-order").span_id
    insert = shop.by_name("INSERT orders").span_id
    open_trace(page, seeded, shop.trace_id, f"?collapsed={order}")
    expect(rows(page)).to_have_count(7)

    page.fill("#trace-search", "postgresql")  # an attribute value inside the collapsed subtree
    expect(row(page, insert)).to_have_class(re.compile(r"\btv-match\b.*\btv-focus\b"))
    expect(rows(page)).to_have_count(10)  # its ancestors were expanded to show it
    assert ids_with(page, "tv-match") == {insert}
    expect(page.locator("#trace-search-count")).to_have_text("1 of 1 match")
    page.wait_for_url(re.compile(r".*[?&]q=postgresql(&|$).*"))

    page.fill("#trace-search", "frontend")  # a service
    expect(page.locator("#trace-search-count")).to_have_text("1 of 6 matches")
    frontend = {s.span_id for s in shop.spans if s.service == "frontend"}
    assert ids_with(page, "tv-match") == frontend
    page.press("#trace-search", "Enter")
    expect(page.locator("#trace-search-count")).to_have_text("2 of 6 matches")
    expect(row(page, shop.by_name("POST charge").span_id)).to_have_class(re.compile(r"\btv-focus\b"))

    for query, name in [("card.brand=visa", "Charge"), ("checkout A-1042", "PlaceOrder")]:  # key=value; all terms
        page.fill("#trace-search", query)
        expect(row(page, shop.by_name(name).span_id)).to_have_class(re.compile(r"\btv-match\b.*\btv-focus\b"))
        expect(page.locator("#trace-search-count")).to_have_text("1 of 1 match")
        assert ids_with(page, "tv-match") == {shop.by_name(name).span_id}
    page.fill("#trace-search", "no-such-thing")
    expect(page.locator("#trace-search-count")).to_have_text("no match")
    assert ids_with(page, "tv-match") == set()


def test_json_download_is_the_apis_trace(seeded: Server, shop: TraceShape, page: Page, tmp_path: Path) -> None:
    open_trace(page, seeded, shop.trace_id)
    with page.expect_download() as started:
        page.click("#trace-download")
    download = started.value
    assert download.suggested_filename == f"trace-{shop.trace_id}.json"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert json.loads(saved.read_text()) == api_trace(seeded, shop.trace_id)


def test_a_deep_link_as_the_first_page_after_start_up(server: Server, page: Page) -> None:
    """Dash's FastAPI backend leaves assets out of the first page when it is not "/": the page
    loads its own then."""
    shape = shop_trace()
    send(server.otlp_http, shape)
    payment = shape.by_name("Charge").span_id
    open_trace(page, server, shape.trace_id, f"?span={payment}")
    expect(rows(page)).to_have_count(10)
    expect(page.locator("#span-overview")).to_contain_text(payment)
    expect(row(page, payment).locator(".tv-bar")).to_have_css("position", "absolute")  # trace.css applies


def test_a_ten_thousand_span_trace_becomes_interactive(
    seeded: Server, wide: TraceShape, page: Page, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    body = api_trace(seeded, wide.trace_id)
    assert body["spanCount"] == WIDE_SPANS
    started = time.perf_counter()
    open_trace(page, seeded, wide.trace_id)
    interactive_s = time.perf_counter() - started
    ready_ms = float(page.locator("#trace-view").get_attribute("data-ready-ms") or "nan")
    record_property("trace_page_10k_interactive_s", round(interactive_s, 3))
    record_property("trace_page_10k_ready_ms_since_navigation", ready_ms)
    (tmp_path / "interactive.json").write_text(json.dumps({"wall_s": interactive_s, "ready_ms": ready_ms}))
    expect(page.locator("#trace-summary")).to_contain_text("10,000 spans, 12 services")

    in_dom = rows(page).count()
    assert 10 < in_dom <= MAX_ROWS_IN_DOM
    first = body["spans"][0]["spanId"]
    expect(row(page, first)).to_be_visible()

    last = body["spans"][-1]
    page.locator("#waterfall").evaluate("el => { el.scrollTop = el.scrollHeight; }")
    expect(row(page, last["spanId"])).to_be_visible()
    expect(row(page, first)).to_have_count(0)  # scrolled out of the window, so out of the DOM
    assert rows(page).count() <= MAX_ROWS_IN_DOM
    row(page, last["spanId"]).click()
    expect(page.locator("#span-overview")).to_contain_text(last["spanId"])
    expect(page.locator("#span-attributes")).to_contain_text(f"index{last['attributes']['index']}")
    screenshot(page, "trace-10k", full_page=False)

    page.fill("#trace-search", f"#{WIDE_SPANS // 2}")  # one operation name, deep in the tree
    expect(page.locator("#trace-search-count")).to_have_text("1 of 1 match")
    expect(page.locator("#waterfall .tv-row.tv-focus")).to_be_visible()


def test_the_minimap_moves_the_view_and_the_ruler_zooms(seeded: Server, wide: TraceShape, page: Page) -> None:
    last = api_trace(seeded, wide.trace_id)["spans"][-1]["spanId"]
    open_trace(page, seeded, wide.trace_id)
    minimap = page.locator("#trace-minimap")
    box = minimap.bounding_box()
    assert box is not None
    scrolled = "el => el.scrollTop / (el.scrollHeight - el.clientHeight)"
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # the middle rows
    page.wait_for_function(f"({scrolled})(document.getElementById('waterfall')) > 0.4")
    assert 0.45 < page.locator("#waterfall").evaluate(scrolled) < 0.55
    page.mouse.down()  # a drag down, past the minimap's end: the last rows
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] + 50, steps=5)
    page.mouse.up()
    expect(row(page, last)).to_be_visible()
    assert rows(page).count() <= MAX_ROWS_IN_DOM

    ruler = page.locator("#trace-ruler")
    ticks = page.locator("#trace-ruler .tv-tick")
    expect(ticks.last).to_have_text("30 s")
    expect(page.locator("#trace-reset-zoom")).to_be_hidden()
    r = ruler.bounding_box()
    assert r is not None
    page.mouse.move(r["x"] + 1, r["y"] + r["height"] / 2)  # drag over the first half: zoom into it
    page.mouse.down()
    page.mouse.move(r["x"] + r["width"] / 2, r["y"] + r["height"] / 2, steps=5)
    page.mouse.up()
    expect(ticks.last).to_have_text(re.compile(r"^1[45](\.\d+)? s$"))
    expect(page.locator("#trace-reset-zoom")).to_be_visible()
    window = page.locator(".tv-minimap-window")
    assert float(window.evaluate("w => parseFloat(w.style.width)")) < 55  # the minimap shows the zoomed window
    page.mouse.click(box["x"] + box["width"] * 0.95, box["y"] + box["height"] / 2)  # pan the time window right
    expect(ticks.first).not_to_have_text("0 ns")
    assert float(window.evaluate("w => parseFloat(w.style.left)")) > 40
    page.click("#trace-reset-zoom")
    expect(ticks.last).to_have_text("30 s")
    expect(ticks.first).to_have_text("0 ns")
