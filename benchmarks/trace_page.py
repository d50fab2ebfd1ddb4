"""`make bench-trace-page`: time until the dashboard's page of a 10,000-span trace is interactive,
in headless Chromium against `tracehouse serve` (embedded store), and what an interaction costs then.

Each load is a first visit (a new browser context: no cache) of ``/trace/<id>``; "interactive" is
the moment the waterfall's first window of rows is drawn with its handlers attached
(``#trace-view[data-ready]``), read from the page's own clock (ms since navigation start) and
from the wall clock around ``goto``. Baseline in the same run: the API's answer for the same trace
(``GET /api/v1/traces/<id>``, JSON parsed), the floor of any page that shows it. After each load:
one frame of a jump to the last row, a click on it (detail), a search over every span, in-page.
Medians over ``--loads`` loads, after one warm-up load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, sync_playwright

from tests.e2e.server import Server, start_server
from tests.e2e.trace_shapes import send, wide_trace

CHROMIUM = "/usr/bin/chromium"  # Debian's chromium; Playwright never downloads a browser here
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # fmt: skip

#: In-page measurements after the page is ready: a scroll to the end (until the next frame),
#: a click on the last row, a search matching one span in all of them.
_INTERACTIONS = """async () => {
  const frame = () => new Promise((resolve) => requestAnimationFrame(() => resolve()));
  const view = document.getElementById("trace-view");
  const scroller = document.getElementById("waterfall");
  let t = performance.now();
  scroller.scrollTop = scroller.scrollHeight;
  await frame();
  const scrollMs = performance.now() - t;
  const rows = [...scroller.querySelectorAll(".tv-row")];
  const last = rows.reduce((a, b) => (Number(a.dataset.pos) > Number(b.dataset.pos) ? a : b));
  t = performance.now();
  last.click();
  const clickMs = performance.now() - t;
  const detailShown = document.getElementById("span-overview").textContent.includes(last.dataset.spanId);
  const input = document.getElementById("trace-search");
  input.value = "#5000";
  t = performance.now();
  input.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
  const searchMs = performance.now() - t;
  const update = performance.getEntriesByType("resource")
    .filter((e) => e.name.includes("_dash-update-component"))
    .sort((a, b) => b.encodedBodySize - a.encodedBodySize)[0];
  return {
    readyMs: Number(view.dataset.readyMs), mountMs: Number(view.dataset.mountMs),
    callbackMs: update ? update.responseEnd - update.requestStart : NaN,
    callbackMiB: update ? update.encodedBodySize / 2 ** 20 : NaN,
    rowsInDom: rows.length, nodesInDom: document.getElementsByTagName("*").length,
    heapMiB: performance.memory ? performance.memory.usedJSHeapSize / 2 ** 20 : NaN,
    scrollMs, clickMs, searchMs, detailShown,
    matches: document.getElementById("trace-search-count").textContent,
  };
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=10_000, help="spans in the trace")
    parser.add_argument("--loads", type=int, default=7, help="measured page loads; the median is reported")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-trace-page-") as data:
        server = start_server(Path(data) / "data")
        try:
            run(server, args.spans, args.loads)
        finally:
            server.stop()


def run(server: Server, spans: int, loads: int) -> None:
    shape = wide_trace(spans)
    send(server.otlp_http, shape)
    url = f"{server.ui}/trace/{shape.trace_id}"
    api = [_api_seconds(server, shape.trace_id) for _ in range(loads)]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            print(f"Chromium {browser.version}, Python {sys.version.split()[0]}, {os.cpu_count()} cores; "
                  f"a trace of {spans:,} spans, {loads} loads after a warm-up", flush=True)  # fmt: skip
            _load(browser, url)  # warm-up: Dash's first page, the server's caches
            results = []
            for n in range(loads):
                wall, found = _load(browser, url)
                results.append({"wallMs": wall * 1000, **found})
                print(f"  load {n + 1}: interactive {wall * 1000:,.0f} ms (page clock {found['readyMs']:,.0f} ms)")
        finally:
            browser.close()
    _report(results, statistics.median(api) * 1000)


def _load(browser: Browser, url: str) -> tuple[float, dict[str, Any]]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        started = time.perf_counter()
        page.goto(url)
        page.wait_for_selector("#trace-view[data-ready=true]", state="attached", timeout=120_000)
        wall = time.perf_counter() - started
        found: dict[str, Any] = page.evaluate(_INTERACTIONS)
        assert found["detailShown"], found
        assert found["matches"] == "1 of 1 match", found
        return wall, found
    finally:
        context.close()


def _api_seconds(server: Server, trace_id: str) -> float:
    started = time.perf_counter()
    answer = httpx.get(f"{server.ui}/api/v1/traces/{trace_id}", timeout=60)
    answer.json()
    assert answer.status_code == 200, answer.text
    return time.perf_counter() - started


def _report(results: list[dict[str, Any]], api_ms: float) -> None:
    def median(key: str) -> float:
        return statistics.median(r[key] for r in results)

    wall = median("wallMs")
    print(f"time until interactive (median): {wall:,.0f} ms wall, {median('readyMs'):,.0f} ms since navigation start")
    print(f"  range {min(r['wallMs'] for r in results):,.0f}–{max(r['wallMs'] for r in results):,.0f} ms wall")
    print(f"  the API's answer alone (baseline): {api_ms:,.0f} ms; ratio {wall / api_ms:.1f}")
    print(f"  Dash callback carrying the trace: {median('callbackMs'):,.0f} ms, {median('callbackMiB'):.1f} MiB")
    print(f"  waterfall mount (index + first rows): {median('mountMs'):.0f} ms")
    dom = f"{median('rowsInDom'):.0f} rows, {median('nodesInDom'):,.0f} elements"
    print(f"  DOM: {dom}; JS heap {median('heapMiB'):.0f} MiB")
    print(f"then: jump to the last row {median('scrollMs'):.1f} ms (to the next frame), click → detail "
          f"{median('clickMs'):.1f} ms, search over every span {median('searchMs'):.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
