"""`make bench-breaker-wall`: what one live update of the breaker wall costs with 200 breakers, in
headless Chromium against `tracehouse serve` (embedded store) fed by real ``POST /v1/breakers``
reports every second, against a wall of 20 breakers measured in the same run as the baseline.

Two clusters report all along (two hosts each, every breaker every second, a thread pool per
group of ten): ``big`` with ``--breakers`` breakers and ``base`` with ``--baseline``. For each, a
first visit of ``/breakers?cluster=…`` lets the sparklines seed (``--warmup`` updates), then per
update of the wall (the ``breakers-tick`` callback), in the page: request → DOM updated (from the
callback's ``fetch`` to the last mutation of the wall it caused), request → answer (server and
network), the answer's bytes, and the renderer's main-thread time over the update's cycle
(Chrome's ``TaskDuration`` between two tick requests). Medians and p95 over ``--updates`` updates.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, Page, sync_playwright

from tests.e2e.server import Server, start_server
from tracehouse.instrumentation.breakers.histogram import bucket_of
from tracehouse.instrumentation.breakers.wire import BreakerReport, BreakerSample

CHROMIUM = "/usr/bin/chromium"  # Debian's chromium; Playwright never downloads a browser here
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # fmt: skip
HOSTS = 2
GROUP = 10  # breakers per group (one thread pool each)
HISTORY_S = 120  # seconds of stats posted before the page opens: full sparklines

#: Installed before the page's own scripts: times each tick callback and the DOM mutations it causes.
_PROBE = """(() => {
  const ticks = [];
  window.__wall = { ticks };
  performance.setResourceTimingBufferSize(100000);
  const fetch0 = window.fetch;
  window.fetch = function (input, init) {
    const url = typeof input === "string" ? input : input.url;
    const body = init && typeof init.body === "string" ? init.body : "";
    const promise = fetch0.apply(this, arguments);
    if (!url.includes("_dash-update-component") || !body.includes('"breakers-tick"')) return promise;
    const tick = { start: performance.now(), answered: NaN, dom: NaN, bytes: NaN };
    ticks.push(tick);
    return promise.then((response) => {
      tick.answered = performance.now();
      response.clone().arrayBuffer().then((b) => { tick.bytes = b.byteLength; });
      return response;
    });
  };
  const watched = "#breakers-wall, #breakers-pools, #breakers-status";
  new MutationObserver((mutations) => {
    const hit = mutations.some((m) => {
      if (m.attributeName === "data-dash-is-loading") return false;  // Dash marks a pending callback
      const node = m.target.nodeType === 1 ? m.target : m.target.parentElement;
      return node && node.closest(watched);
    });
    const last = ticks.findLast((t) => !Number.isNaN(t.answered));
    if (hit && last) last.dom = performance.now();
  }).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
})();"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--breakers", type=int, default=200, help="breakers on the measured wall")
    parser.add_argument("--baseline", type=int, default=20, help="breakers on the baseline wall")
    parser.add_argument("--updates", type=int, default=40, help="measured updates per wall")
    parser.add_argument("--warmup", type=int, default=16, help="updates before measuring (sparklines seed)")
    args = parser.parse_args()
    sizes = {"base": args.baseline, "big": args.breakers}
    with tempfile.TemporaryDirectory(prefix="bench-breaker-wall-") as data:
        server = start_server(Path(data) / "data")
        try:
            prefill(server, sizes)
            with feeding(server, sizes):
                results = measure(server, sizes, args.updates, args.warmup)
        finally:
            server.stop()
    report(results, sizes)


def samples(n: int, second: int, host: int, rng: random.Random) -> list[BreakerSample]:
    """One host's second of ``n`` breakers and their thread pools: busy and slow ones, failing
    ones, and every 25th breaker open on the first host only (``Open 1 / Closed 1``)."""
    found = []
    for i in range(n):
        calls = 5 + (i * 7) % 60 + rng.randrange(5)
        failures = calls // 3 if i % 10 == 3 else rng.randrange(2)
        state = "OPEN" if i % 25 == 0 and host == 0 else "CLOSED"
        latency = {bucket_of(2.0 + (i % 13) * 9): calls - failures, bucket_of(250.0): failures}
        found.append(BreakerSample(
            kind="command", name=f"service{i // GROUP:02d}.command{i:03d}", group=f"service{i // GROUP:02d}",
            second=second, state=state, counts={"success": calls - failures, "failure": failures},
            latency=latency, latency_sum_ms=sum(k * 1.0 for k in latency.values()), max_concurrency=1 + i % 4,
        ))  # fmt: skip
    for g in range(-(-n // GROUP)):
        gauges = {"currentActiveCount": rng.randrange(4), "currentQueueSize": 0, "currentPoolSize": 8,
                  "propertyValue_queueSizeRejectionThreshold": 5}  # fmt: skip
        name = f"service{g:02d}"
        counts = {"success": 50 + rng.randrange(20)}
        found.append(BreakerSample(kind="threadpool", name=name, group=name, second=second, counts=counts,
                                   max_concurrency=4, gauges=gauges))  # fmt: skip
    return found


def post(http: httpx.Client, server: Server, cluster: str, host: int, found: list[BreakerSample]) -> None:
    body = BreakerReport(service=cluster, instance=f"{cluster}-{host}:80", cluster=cluster, samples=tuple(found))
    answer = http.post(f"{server.otlp_http}/v1/breakers", json=body.to_json(), timeout=30)
    answer.raise_for_status()


def prefill(server: Server, sizes: dict[str, int]) -> None:
    """The last two minutes of stats, so the sparklines seed from history as they would on a live system."""
    rng, now = random.Random(1), int(time.time())
    with httpx.Client() as http:
        for cluster, n in sizes.items():
            for host in range(HOSTS):
                for start in range(now - HISTORY_S, now, 30):
                    found = [s for second in range(start, min(start + 30, now)) for s in samples(n, second, host, rng)]
                    post(http, server, cluster, host, found)
    print(f"prefilled {HISTORY_S} s of stats: {sizes} breakers on {HOSTS} hosts each", flush=True)


@contextmanager
def feeding(server: Server, sizes: dict[str, int]) -> Iterator[None]:
    """Every host of every cluster reports the second just over, once a second, until the block ends."""
    stop = threading.Event()

    def loop() -> None:
        rng = random.Random(2)
        with httpx.Client() as http:
            while not stop.wait(1.0 - time.time() % 1.0):  # at each second's start
                second = int(time.time()) - 1
                for cluster, n in sizes.items():
                    for host in range(HOSTS):
                        post(http, server, cluster, host, samples(n, second, host, rng))

    feeder = threading.Thread(target=loop, name="breaker-feeder", daemon=True)
    feeder.start()
    try:
        yield
    finally:
        stop.set()
        feeder.join(30)


def measure(server: Server, sizes: dict[str, int], updates: int, warmup: int) -> dict[str, list[dict[str, float]]]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            print(f"Chromium {browser.version}, Python {sys.version.split()[0]}, {os.cpu_count()} cores; "
                  f"{updates} updates per wall after {warmup}", flush=True)  # fmt: skip
            return {cluster: wall(browser, server, cluster, n, updates, warmup) for cluster, n in sizes.items()}
        finally:
            browser.close()


def wall(browser: Browser, server: Server, cluster: str, n: int, updates: int, warmup: int) -> list[dict[str, float]]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.add_init_script(_PROBE)
        page.goto(f"{server.ui}/breakers?cluster={cluster}")
        page.wait_for_selector(f".breaker-tile >> nth={n - 1}", state="attached", timeout=120_000)
        cdp = context.new_cdp_session(page)
        cdp.send("Performance.enable")
        wait_ticks(page, warmup)
        first = ticks(page)
        cpu = [task_seconds(cdp)]
        for i in range(updates + 1):
            wait_ticks(page, first + i + 1)
            cpu.append(task_seconds(cdp))
            if i and i % 10 == 0:
                print(f"  {cluster} ({n} breakers): {i}/{updates} updates", flush=True)
        measured: list[dict[str, Any]] = page.evaluate(f"window.__wall.ticks.slice({first - 1}, {first - 1 + updates})")
        shown = page.locator(".breaker-tile").count()
        assert shown == n, f"{shown} tiles on the {cluster} wall, {n} expected"
        for tick, start, end in zip(measured, cpu, cpu[1:], strict=False):
            tick["cpuMs"] = (end - start) * 1000
        for tick, wire in zip(measured, page.evaluate(_WIRE, measured), strict=True):
            tick["wire"] = wire
        return measured
    finally:
        context.close()


#: Bytes on the wire of each tick's answer (after gzip), from Resource Timing: the entry of the
#: callback URL that started with the tick's fetch.
_WIRE = """(ticks) => {
  const entries = performance.getEntriesByType("resource").filter((e) => e.name.includes("_dash-update-component"));
  return ticks.map((t) => {
    const entry = entries.find((e) => Math.abs(e.startTime - t.start) < 5);
    return entry ? entry.encodedBodySize : NaN;
  });
}"""


def ticks(page: Page) -> int:
    return int(page.evaluate("window.__wall.ticks.length"))


def wait_ticks(page: Page, count: int) -> None:
    page.wait_for_function("n => window.__wall.ticks.length >= n", arg=count, polling=100, timeout=120_000)


def task_seconds(cdp: Any) -> float:
    metrics = cdp.send("Performance.getMetrics")["metrics"]
    return float(next(m["value"] for m in metrics if m["name"] == "TaskDuration"))


def summary(values: list[float]) -> tuple[float, float]:
    """(median, p95) of the values that were measured."""
    found = sorted(v for v in values if v == v)  # NaN: an update that never reached the DOM
    if not found:
        return float("nan"), float("nan")
    return statistics.median(found), found[min(len(found) - 1, round(0.95 * (len(found) - 1)))]


def report(results: dict[str, list[dict[str, float]]], sizes: dict[str, int]) -> None:
    figures = {cluster: _figures(found) for cluster, found in results.items()}
    for cluster, found in results.items():
        print(_line(sizes[cluster], found, figures[cluster]))
    big, base = figures["big"], figures["base"]
    ratios = ", ".join(f"{key} {big[key][0] / base[key][0]:.1f}" for key in ("dom", "answer", "cpu", "wire", "kib"))
    print(f"ratio {sizes['big']} / {sizes['base']} breakers (medians): {ratios}")


def _figures(found: list[dict[str, float]]) -> dict[str, tuple[float, float]]:
    return {
        "dom": summary([t["dom"] - t["start"] for t in found]),
        "answer": summary([t["answered"] - t["start"] for t in found]),
        "cpu": summary([t["cpuMs"] for t in found if "cpuMs" in t]),
        "wire": summary([t["wire"] / 1024 for t in found]),
        "kib": summary([t["bytes"] / 1024 for t in found]),
    }


def _line(n: int, found: list[dict[str, float]], f: dict[str, tuple[float, float]]) -> str:
    starts = [t["start"] for t in found]
    period = (starts[-1] - starts[0]) / max(1, len(starts) - 1)
    missed = sum(1 for t in found if t["dom"] != t["dom"])
    return (
        f"{n:>4} breakers ({len(found)} updates, one every {period:,.0f} ms, {missed} not drawn): "
        f"request → DOM {f['dom'][0]:,.0f} ms (p95 {f['dom'][1]:,.0f}), of which the answer "
        f"{f['answer'][0]:,.0f} ms (p95 {f['answer'][1]:,.0f}); main thread {f['cpu'][0]:,.0f} ms "
        f"(p95 {f['cpu'][1]:,.0f}) per update; {f['wire'][0]:,.1f} KiB on the wire "
        f"({f['kib'][0]:,.1f} KiB decoded) each"
    )


if __name__ == "__main__":
    main()
