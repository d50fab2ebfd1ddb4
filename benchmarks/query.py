"""`make bench-query`: query latency on 10M spans of the Jaeger-comparable data set (1M traces of
10 spans, 11 attributes each) in the embedded store, through the store API the query API calls.

Loads the spans (OTLP bodies through `write_otlp`, the collector's fast path; or `--data-dir` to
reuse a loaded store), links dependencies, then times each query `--repeat` times after a warm-up,
with fresh parameters each time, and prints p50/p95 beside Jaeger's published figures and the targets.
Never run two heavy benchmarks at once: the figures are only as quiet as the machine.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import math
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.dataset import ATTRIBUTE_VALUES, ATTRIBUTES, OPERATIONS_PER_SERVICE, SERVICES, SPANS_PER_TRACE, Timeline
from tracehouse.storage import (
    AttributeFilter,
    ClickHouseStore,
    OtlpPayload,
    RedQuery,
    StoreConfig,
    TraceQuery,
    open_store,
)

MINUTE_NS = 60 * 10**9
WINDOW_NS = 50 * MINUTE_NS  # the spans' range: inside "the last hour" of every query
TRACES_PER_REQUEST = 100  # 1,000 spans per OTLP request
REQUESTS_PER_INSERT = 20  # the pipeline's group commit
LINK_CHUNK_NS = 5 * MINUTE_NS


@dataclass(frozen=True, slots=True)
class Case:
    """One measured query: `run(rng)` calls the store with parameters drawn from `rng` and
    returns how many results it got (printed, so an empty answer does not pass for a fast one)."""

    name: str
    run: Callable[[random.Random], int]
    target_ms: float | None = None
    jaeger_ms: str = ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=10_000_000, help="spans to load (a multiple of 10)")
    parser.add_argument("--data-dir", type=Path, help="store directory; an already loaded store is reused")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs of each query")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs of each query first")
    parser.add_argument("--only", nargs="*", default=None, help="measure only the queries named (substring)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        directory = args.data_dir or Path(scratch) / "data"
        store = open_store(StoreConfig(dsn=f"chdb://{directory.resolve()}"), writers=2)
        try:
            prepare(store, args.spans)
            measure(store, args.repeat, args.warmup, args.only)
        finally:
            store.close()


def prepare(store: ClickHouseStore, spans: int) -> None:
    """Load and link unless the store holds spans already; report the store's size."""
    loaded = count(store, "SELECT count() FROM otel_traces")
    if loaded:
        print(f"reusing the store: {loaded:,} spans")
    else:
        load(store, spans)
    settle(store)
    if not count(store, "SELECT count() FROM tracehouse_links_1m"):
        link(store)
    report_size(store)


def load(store: ClickHouseStore, spans: int) -> None:
    """Generate OTLP bodies (this thread) while 2 writers insert them (the engine releases the GIL)."""
    end = time.time_ns() // MINUTE_NS * MINUTE_NS
    timeline = Timeline(spans // SPANS_PER_TRACE, end - WINDOW_NS, WINDOW_NS)
    print(f"loading {spans:,} spans ({timeline.traces:,} traces over the {WINDOW_NS // MINUTE_NS} min before now)")
    done = 0
    lock = threading.Lock()
    in_flight = threading.BoundedSemaphore(4)

    def insert(payload: OtlpPayload) -> None:
        nonlocal done
        try:
            store.write_otlp(payload)
            with lock:
                done += payload.spans
        finally:
            in_flight.release()

    started = last = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = []
        while True:
            payload = OtlpPayload.concat(
                [OtlpPayload.frame(*timeline.request(TRACES_PER_REQUEST)) for _ in range(REQUESTS_PER_INSERT)]
            )
            if not payload.spans:
                break
            in_flight.acquire()
            futures.append(pool.submit(insert, payload))
            if time.perf_counter() - last >= 10:
                last = time.perf_counter()
                print(f"  {done:>12,} spans  {done / (last - started):>9,.0f} spans/s", flush=True)
        for future in futures:
            future.result()
    elapsed = time.perf_counter() - started
    print(f"loaded {done:,} spans in {elapsed:.0f} s: {done / elapsed:,.0f} spans/s")


def settle(store: ClickHouseStore, limit_s: float = 300) -> None:
    """Wait for background merges to finish (as a store left alone for a while would be)."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit_s:
        if not count(store, "SELECT count() FROM system.merges WHERE database = currentDatabase()"):
            break
        time.sleep(1)
    parts = count(store, "SELECT count() FROM system.parts WHERE active AND table = 'otel_traces'")
    print(f"merges settled after {time.perf_counter() - started:.0f} s; otel_traces has {parts} active parts")


def link(store: ClickHouseStore) -> None:
    """The dependency linker over the spans' whole minutes, 5 minutes at a time (as serve's
    linker would have done while they arrived)."""
    first, last = store.client().query("SELECT min(Minute), max(Minute) FROM tracehouse_red_1m").result_rows[0]
    start, end = int(first.timestamp()) * 10**9, (int(last.timestamp()) + 60) * 10**9
    started = time.perf_counter()
    for chunk in range(start, end, LINK_CHUNK_NS):
        store.link(chunk, min(chunk + LINK_CHUNK_NS, end))
    print(f"linked {(end - start) // MINUTE_NS} minutes in {time.perf_counter() - started:.0f} s")


def report_size(store: ClickHouseStore) -> None:
    rows = (
        store.client()
        .query(
            "SELECT table, sum(bytes_on_disk), sum(rows) FROM system.parts "
            "WHERE active AND database = currentDatabase() GROUP BY table ORDER BY table"
        )
        .result_rows
    )
    sizes = {table: (int(size), int(n)) for table, size, n in rows}
    size, spans = sizes["otel_traces"]
    total = sum(s for s, _ in sizes.values())
    print(f"on disk: otel_traces {size / spans:.1f} B/span; every table {total / spans:.1f} B/span")
    for table, (bytes_, n) in sizes.items():
        print(f"  {table:<28} {n:>12,} rows {bytes_ / 2**20:>9,.1f} MiB")


def measure(store: ClickHouseStore, repeat: int, warmup: int, only: list[str] | None) -> None:
    cases = [c for c in build_cases(store) if not only or any(o in c.name for o in only)]
    print(f"\n{repeat} timed runs per query after {warmup} warm-up runs; ms\n")
    print(f"{'query':<44} {'p50':>8} {'p95':>8} {'results':>8}  {'target':>8}  {'Jaeger (4 vCPU)':>16}")
    rng = random.Random(7)
    for case in cases:
        for _ in range(warmup):
            case.run(rng)
        times, results = [], []
        for _ in range(repeat):
            started = time.perf_counter()
            results.append(case.run(rng))
            times.append((time.perf_counter() - started) * 1000)
        p50, p95 = percentile(times, 50), percentile(times, 95)
        target = f"≤ {case.target_ms:g}" if case.target_ms else ""
        verdict = "" if case.target_ms is None else (" met" if p50 <= case.target_ms else " MISSED")
        print(
            f"{case.name:<44} {p50:>8.1f} {p95:>8.1f} {statistics.median(results):>8g}  {target:>8}"
            f"  {case.jaeger_ms:>16}{verdict}",
            flush=True,
        )


def build_cases(store: ClickHouseStore) -> list[Case]:
    """The queries, over the hour up to the end of the newest minute with spans (the query API's
    default is the hour up to now: the same when spans arrive all the time)."""
    newest = store.client().query("SELECT max(Minute) FROM tracehouse_red_1m").result_rows[0][0]
    end = (int(newest.timestamp()) + 60) * 10**9
    start = end - 60 * MINUTE_NS
    ids = [row[0] for row in store.client().query(
        "SELECT TraceId FROM otel_traces_trace_id_ts ORDER BY cityHash64(TraceId) LIMIT 1000"
    ).result_rows]  # fmt: skip

    def service(rng: random.Random) -> tuple[str, str]:
        s = rng.randrange(len(SERVICES))
        return SERVICES[s], f"operation-{s * OPERATIONS_PER_SERVICE + rng.randrange(OPERATIONS_PER_SERVICE)}"

    def attribute(rng: random.Random) -> AttributeFilter:
        return AttributeFilter(f"attr.key{rng.randrange(ATTRIBUTES)}", "=", f"value-{rng.randrange(ATTRIBUTE_VALUES)}")

    def search(rng: random.Random, *, op: bool, duration: bool, attr: bool, svc: bool = True) -> int:
        name, operation = service(rng)
        query = TraceQuery(
            start, end,
            service=name if svc else None,
            operation=operation if op else None,
            min_duration_ns=20_000_000 if duration else None,
            max_duration_ns=2_000_000_000 if duration else None,
            attributes=(attribute(rng),) if attr else (),
        )  # fmt: skip
        return len(store.find_traces(query))

    def by_duration(rng: random.Random) -> int:
        return search(rng, op=True, duration=True, attr=False)

    def by_attribute(rng: random.Random) -> int:
        return search(rng, op=False, duration=False, attr=True)

    def by_attribute_only(rng: random.Random) -> int:
        return search(rng, op=False, duration=False, attr=True, svc=False)

    def by_everything(rng: random.Random) -> int:
        return search(rng, op=True, duration=True, attr=True)

    return [
        Case("services", lambda rng: len(store.services())),
        Case("operations of a service", lambda rng: len(store.operations(service(rng)[0]))),
        Case("trace by id", lambda rng: len(store.get_trace(rng.choice(ids))), 10, "101"),
        Case("search service+operation+duration", by_duration, 40, "37–47"),
        Case("search service+attribute", by_attribute, 200, "1,769"),
        Case("search attribute only (every service)", by_attribute_only, 200),
        Case("search, all filters", by_everything),
        Case("dependencies, 1 h", lambda rng: len(store.dependencies(start, end).links), 500),
        Case("RED of a service, 1 h, step 1 m", lambda rng: len(store.red(RedQuery(service(rng)[0], start, end, 60)))),
    ]


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p95 of 20 runs is the 19th fastest)."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(len(ordered) * p / 100)) - 1]


def count(store: ClickHouseStore, sql: str) -> int:
    return int(store.client().query(sql).result_rows[0][0])


if __name__ == "__main__":
    main()
