"""The trace search at the form's largest limit, in a real headless Chromium against a real
`tracehouse serve`: 1,000 results all drawn, newest first, texts escaped, and a row's link opening
its trace inside the app. As Dash components (7 a row) 1,000 rows took the tab over two minutes."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.server import Server, start_server
from tests.e2e.trace_shapes import CLIENT, MS, SERVER, SpanSpec, TraceShape, requests

pytestmark = pytest.mark.e2e
TRACES = 1_000  # the form's largest limit


def _shape(i: int, now_ns: int) -> TraceShape:
    """Three spans in two services, trace `i` started `i` half-seconds before the newest; every
    seventh fails in ``back``."""
    t0 = now_ns - (i + 1) * 500 * MS
    root = SpanSpec("front", f"GET /item/{i}?<b>&", t0, t0 + (5 + i % 50) * MS, kind=SERVER)
    call = SpanSpec("front", "call back", t0 + MS, root.end_ns - MS, root, CLIENT)
    error = "boom" if i % 7 == 0 else None
    back = SpanSpec("back", "handle", t0 + 2 * MS, root.end_ns - 2 * MS, call, SERVER, error=error)
    return TraceShape(os.urandom(16).hex(), [root, call, back])


def _send_all(otlp_http: str, shapes: list[TraceShape], per_request: int = 200) -> None:
    for i in range(0, len(shapes), per_request):
        spans: list[dict[str, Any]] = [
            rs for s in shapes[i : i + per_request] for b in requests(s) for rs in b["resourceSpans"]
        ]
        answer = httpx.post(f"{otlp_http}/v1/traces", json={"resourceSpans": spans}, timeout=60)
        assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, list[TraceShape]]]:
    server = start_server(tmp_path_factory.mktemp("scale") / "data")
    try:
        now_ns = time.time_ns()
        shapes = [_shape(i, now_ns) for i in range(TRACES)]
        _send_all(server.otlp_http, shapes)
        deadline = time.monotonic() + 60
        while len(server.api("/api/v1/traces", {"limit": str(TRACES)}).json()["traces"]) < TRACES:
            assert time.monotonic() < deadline, "the traces sent were not all searchable within 60 s"
            time.sleep(0.1)  # flushed every 50 ms; nothing to await but the store
        yield server, shapes
    finally:
        server.stop()


def test_a_thousand_results_are_all_drawn_and_lead_to_their_traces(
    seeded: tuple[Server, list[TraceShape]], page: Page
) -> None:
    server, shapes = seeded
    search = f"{server.ui}/?lookback=1h&limit={TRACES}"
    page.goto(search)
    rows = page.locator("#search-results tr.trace-row")
    expect(rows).to_have_count(TRACES, timeout=60_000)
    expect(page.locator("#search-results th")).to_have_text(
        ["start", "trace", "duration", "spans", "errors", "services"]
    )
    hrefs = page.eval_on_selector_all("#search-results a.trace-link", "links => links.map(a => a.getAttribute('href'))")
    assert hrefs == [f"/trace/{s.trace_id}" for s in shapes]  # newest first
    expect(page.locator("#search-scatter path.point")).to_have_count(TRACES)

    started = datetime.fromtimestamp(shapes[0].spans[0].start_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    expect(rows.nth(0).locator("td")).to_have_text(
        [started, "front: GET /item/0?<b>&", "5.000 ms", "3 spans", "1", "back (1), front (2)"]
    )
    expect(rows.nth(1).locator("td").nth(4)).to_have_text("0")  # only every seventh fails
    expect(page.locator("#search-results b")).to_have_count(0)  # names are text, never markup

    page.evaluate("window.notReloaded = true")
    chosen = shapes[765]  # far below the fold
    rows.nth(765).get_by_role("link").click()
    page.wait_for_url(f"{server.ui}/trace/{chosen.trace_id}")
    expect(page.locator("#trace-summary")).to_contain_text("3 spans, 2 services")
    assert page.evaluate("window.notReloaded") is True  # in the app, as a dcc.Link navigates

    page.go_back()
    page.wait_for_url(search)
    expect(rows).to_have_count(TRACES, timeout=60_000)
