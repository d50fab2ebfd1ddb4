"""The dashboard in a real headless Chromium against a real `tracehouse serve`: the
service list, a trace opened from the lookup box, its waterfall, summary and a span's attributes."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from playwright.sync_api import Browser, expect

from tests.e2e.browser import checked_page, screenshot
from tests.e2e.server import Server, start_server
from tests.e2e.test_serve import make_trace

pytestmark = pytest.mark.e2e


def test_search_results_lead_to_the_waterfall(server: Server, browser: Browser, tmp_path: Path) -> None:
    trace_id = make_trace(OTLPSpanExporter(endpoint=f"{server.otlp_http}/v1/traces"), "storefront")
    with checked_page(browser) as page:
        page.goto(f"{server.ui}/?service=storefront&lookback=1h")
        rows = page.locator("#search-results tr.trace-row")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("storefront: GET /checkout")
        expect(rows.first).to_contain_text("3 spans")
        expect(page.locator("#search-scatter path.point")).to_have_count(1)

        rows.first.get_by_role("link").click()
        page.wait_for_url(f"{server.ui}/trace/{trace_id}")
        expect(page.locator("#trace-summary")).to_have_text(re.compile(r"^3 spans, 1 service, [\d.]+ ms, 1 error$"))
        spans = page.locator("#waterfall .tv-row")
        expect(spans).to_have_count(3)
        top_to_bottom = sorted(spans.all(), key=lambda row: int(row.get_attribute("data-pos") or -1))
        names = [row.locator(".tv-name") for row in top_to_bottom]
        screenshot(page, "waterfall-small")
        assert [name.text_content() for name in names] == [
            "storefront: GET /checkout",
            "storefront: charge",
            "storefront: persist",
        ]
        left = [(name.bounding_box() or {"x": 0.0})["x"] for name in names]
        assert left[0] < left[1] == left[2]  # children indented

        top_to_bottom[0].click()  # a span → its attributes
        expect(page.locator("#span-attributes tr")).to_have_text(["http.status200"])
        expect(page.locator("#span-events")).to_contain_text("validated")


def test_the_search_form_writes_the_url(server: Server, browser: Browser) -> None:
    make_trace(OTLPSpanExporter(endpoint=f"{server.otlp_http}/v1/traces"), "catalog")
    with checked_page(browser) as page:
        page.goto(f"{server.ui}/?lookback=1h")
        expect(page.locator("#search-results tr.trace-row")).to_have_count(1)
        page.fill("#search-min", "1h")
        page.click("#search-go")
        page.wait_for_url(re.compile(r".*minDuration=1h.*"))
        expect(page.locator("#search-empty")).to_have_text("No traces match.")
        page.fill("#search-min", "")
        page.fill("#search-attr", "http.status=200")
        page.click("#search-go")
        page.wait_for_url(re.compile(r".*attr=http.status%3D200.*"))
        expect(page.locator("#search-results tr.trace-row")).to_have_count(1)


def test_trace_page_from_the_lookup_box(server: Server, browser: Browser) -> None:
    trace_id = make_trace(OTLPSpanExporter(endpoint=f"{server.otlp_http}/v1/traces"), "lookup")
    with checked_page(browser) as page:
        page.goto(f"{server.ui}/?service=lookup&lookback=1h")
        page.fill("#lookup-id", trace_id)
        page.press("#lookup-id", "Enter")
        page.wait_for_url(f"{server.ui}/trace/{trace_id}")  # without the search's query string
        expect(page.locator("#trace-summary")).to_contain_text("3 spans")


def test_unknown_trace_says_not_found(server: Server, browser: Browser) -> None:
    with checked_page(browser) as page:
        page.goto(f"{server.ui}/trace/{'ab' * 16}")
        expect(page.locator("main")).to_contain_text("Not found.")
        page.goto(f"{server.ui}/trace/nothex")
        expect(page.locator("main")).to_contain_text("The query API answered 400")
        page.goto(f"{server.ui}/trace/not-a-trace")  # was the search page, silently
        expect(page.locator("#page-error")).to_contain_text("The query API answered 400: trace id 'not-a-trace'")
        page.goto(f"{server.ui}/nosuchpage")
        expect(page.locator("#page-error")).to_contain_text("There is no page at /nosuchpage.")


def test_service_map(tmp_path: Path, browser: Browser) -> None:
    from tests.e2e.test_compat_apis import two_service_trace

    server = start_server(tmp_path / "data", "--link-interval", "0.2")
    try:
        with checked_page(browser, viewport={"width": 1200, "height": 900}) as page:
            two_service_trace(server)
            while len(server.api("/api/v1/dependencies").json()["edges"]) < 2:  # bounded by the test timeout
                pass
            page.goto(f"{server.ui}/?lookback=1h")
            page.click("#nav-map")
            page.wait_for_url(f"{server.ui}/map")
            expect(page.locator("#service-map canvas").first).to_be_visible()
            screenshot(page, "map-two-services")
            # the graph's elements as the page holds them (Cytoscape draws on a canvas)
            script = "() => document.querySelector('#service-map')._cyreg.cy.nodes().map(n => n.data('label'))"
            labels = page.evaluate(script)
            assert sorted(labels) == ["back", "front", "sqlite"]

            # A service node leads to its service page: RED charts, operations, neighbours.
            page.evaluate("() => document.querySelector('#service-map')._cyreg.cy.$id('front').emit('tap') && null")
            page.wait_for_url(f"{server.ui}/service/front?lookback=1h")
            expect(page.locator("#service-name")).to_have_text("front")
            expect(page.locator("#service-rate")).to_be_visible()
            expect(page.locator("#service-operations")).to_contain_text("GET /")
            expect(page.locator("#service-downstream")).to_contain_text("back (service) — 1 calls, 0.0 % errors")
            expect(page.locator("#service-downstream")).to_contain_text("sqlite (database)")
            screenshot(page, "service-front")
            page.click("#service-downstream >> text=back")
            page.wait_for_url(f"{server.ui}/service/back")
            expect(page.locator("#service-upstream")).to_contain_text("front (service)")
            expect(page.locator("#service-operations")).to_contain_text("handle")
            page.goto(f"{server.ui}/service/nobody")
            expect(page.locator("#service-empty")).to_contain_text("tracehouse-run")

            # An open breaker of a service is a badge on its node.
            report = {"service": "front", "instance": "front-1:80", "samples": [
                {"name": "front.back", "second": int(time.time()) - 2, "state": "OPEN", "counts": {"failure": 30}},
            ]}  # fmt: skip
            breakers_url = server.otlp_http.removesuffix("/v1/traces") + "/v1/breakers"
            assert httpx.post(breakers_url, json=report, timeout=30).status_code == 200
            page.goto(f"{server.ui}/map")
            expect(page.locator("#service-map canvas").first).to_be_visible()
            page.wait_for_function(f"() => ({script})().includes('front  ⚠ 1 open')")
    finally:
        server.stop()


def test_an_empty_store_says_how_to_send_data(server: Server, browser: Browser) -> None:
    with checked_page(browser) as page:
        for path, element in (("/", "#search-empty"), ("/map", "#map-empty")):
            page.goto(server.ui + path)
            expect(page.locator(element)).to_contain_text("tracehouse-run --service-name")
            expect(page.locator(element)).to_contain_text("http://127.0.0.1:4318/v1/traces")
        page.goto(server.ui + "/breakers")
        expect(page.locator("#breakers-empty")).to_contain_text('@breaker("payments.charge"')

    # Dash's own answers travel gzipped (a 200-tile wall update is ~800 KB of HTML); the API's as they were
    gzip = {"Accept-Encoding": "gzip"}
    layout = httpx.get(f"{server.ui}/_dash-layout", headers=gzip, timeout=30)
    assert (layout.status_code, layout.headers.get("content-encoding")) == (200, "gzip")
    assert "page" in layout.text  # decoded as any client decodes it
    services = httpx.get(f"{server.ui}/api/v1/services", headers=gzip, timeout=30)
    assert (services.status_code, services.headers.get("content-encoding")) == (200, None)
