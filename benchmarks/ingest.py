"""`make bench-ingest`: sustained OTLP/HTTP ingest into `tracehouse serve` (embedded store),
and, in the same run, the in-process limit (validate + insert of the same payloads, no HTTP).

Prints spans/s stored (not merely acknowledged: a spooled span is acknowledged before it is
stored), the ratio between the two, server CPU and peak RSS, bytes per span on disk.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from benchmarks.dataset import SPANS_PER_TRACE, Request, requests
from tests.e2e.server import start_server
from tracehouse.collector import CollectorConfig

TRACES_PER_REQUEST = 100  # 1,000 spans per request, a typical SDK batch size is 512


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the end-to-end run")
    parser.add_argument("--senders", type=int, default=64, help="concurrent sending threads (many SDKs at once)")
    parser.add_argument(
        "--serve-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="one more argument for tracehouse serve, e.g. --serve-arg=--flush-workers=3 (repeatable)",
    )
    parser.add_argument("--in-process-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    data = requests(200, TRACES_PER_REQUEST)
    spans_per_request = TRACES_PER_REQUEST * SPANS_PER_TRACE
    if args.in_process_only:
        print(f"{in_process(data, spans_per_request):.0f}")
        return
    print(
        f"data set: {len(data)} requests of {spans_per_request} spans, sent with new trace and span ids each time "
        f"({statistics.mean(len(r.body) for r in data) / spans_per_request:.0f} B/span as OTLP protobuf)",
        flush=True,
    )
    print("[1/2] in-process limit (validate + insert, 2 writers, separate process) ...", flush=True)
    limit = float(
        subprocess.run(
            [sys.executable, "-m", "benchmarks.ingest", "--in-process-only"], capture_output=True, text=True, check=True
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    print(f"      {limit:,.0f} spans/s", flush=True)
    extra = " ".join(args.serve_arg)
    print(
        f"[2/2] end to end: {args.senders} senders -> tracehouse serve {extra} for {args.seconds:g} s ...", flush=True
    )
    end_to_end(data, spans_per_request, args.seconds, args.senders, limit, args.serve_arg)


def in_process(data: list[Request], spans_per_request: int, workers: int = 2) -> float:
    """Validate + insert, 45 requests per insert (~16 MiB: the pipeline's default `flush_bytes`
    until 2026-11-26, 12 MiB since; kept so that figures compare across sessions), `workers`
    inserts at once (its default flush workers): 1.2M spans timed after ~100k of warm-up, so
    that merges run as they do in a steady stream."""
    from tracehouse.collector import decode_protobuf
    from tracehouse.storage import OtlpPayload, StoreConfig, open_store

    with tempfile.TemporaryDirectory() as directory:
        store = open_store(StoreConfig(dsn=f"chdb://{directory}"), writers=workers)
        bodies = [request.renewed() for request in data * 6]  # before the clock: the senders' work
        groups = [bodies[i : i + 45] for i in range(0, len(bodies), 45)]

        def insert(group: list[bytes]) -> None:
            store.write_otlp(OtlpPayload.concat([decode_protobuf(body).payload for body in group]))

        try:
            with concurrent.futures.ThreadPoolExecutor(workers) as pool:
                list(pool.map(insert, groups[:2]))  # warm-up: the engine's first parts and merges
            started = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(workers) as pool:
                list(pool.map(insert, groups))
            elapsed = time.perf_counter() - started
        finally:
            store.close()
    return sum(map(len, groups)) * spans_per_request / elapsed


def end_to_end(
    data: list[Request], spans_per_request: int, seconds: float, senders: int, limit: float, serve_args: list[str]
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        # serve's own flush interval (the e2e helper shortens it for fast tests)
        interval = str(CollectorConfig().flush_interval)
        server = start_server(
            Path(directory) / "data", "--log-level", "warning", "--flush-interval", interval, *serve_args
        )
        url = f"{server.otlp_http}/v1/traces"
        metrics = f"{server.otlp_http}/metrics"
        stored_before = _metric(metrics, "tracehouse_stored_spans")
        inserts_before = _metric(metrics, "tracehouse_flush_seconds_count")
        insert_seconds_before = _metric(metrics, "tracehouse_flush_seconds_sum")
        accepted = refused = 0
        lock = threading.Lock()
        deadline = time.monotonic() + seconds
        user_before, system_before = _cpu_seconds(server.proc.pid)
        own_before = time.process_time()

        def send(worker: int) -> None:
            nonlocal accepted, refused
            with httpx.Client(timeout=60) as client:
                i = worker
                while time.monotonic() < deadline:
                    response = client.post(
                        url, content=data[i % len(data)].renewed(), headers={"content-type": "application/x-protobuf"}
                    )
                    with lock:
                        if response.status_code == 200:
                            accepted += spans_per_request
                        else:
                            refused += spans_per_request
                    if response.status_code != 200 and "retry-after" in response.headers:
                        # as OTLP exporters do: a sender retrying at once would spend the CPU the server needs
                        time.sleep(float(response.headers["retry-after"]))
                    i += senders

        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(senders) as pool:
            list(pool.map(send, range(senders)))
        elapsed = time.monotonic() - started
        stored = _metric(metrics, "tracehouse_stored_spans") - stored_before
        inserts = _metric(metrics, "tracehouse_flush_seconds_count") - inserts_before
        insert_seconds = _metric(metrics, "tracehouse_flush_seconds_sum") - insert_seconds_before
        spooled, busy = _metric(metrics, "tracehouse_spool_batches"), _metric(metrics, "tracehouse_store_busy_retries")
        runs = 'tracehouse_linker_runs_total{outcome="%s"}'
        linked, unlinked = _metric(metrics, runs % "linked"), _metric(metrics, runs % "failed")
        link_seconds = _metric(metrics, "tracehouse_linker_seconds_sum")
        user, system = _cpu_seconds(server.proc.pid)
        user, system = user - user_before, system - system_before
        own = time.process_time() - own_before
        rss = _peak_rss_mib(server.proc.pid)
        stopping = time.monotonic()
        try:
            server.stop()
        except subprocess.TimeoutExpired:
            tail = "\n".join(server.output[-40:])
            print(f"      tracehouse serve did not stop within 60 s of SIGTERM (killed); its last output:\n{tail}")
        else:
            print(f"      tracehouse serve stopped {time.monotonic() - stopping:.1f} s after SIGTERM")
        for line in [line for line in server.output if "dependency linker:" in line][:5]:
            print(f"      serve: {line[:400]}")
        disk = _bytes_per_span(Path(directory) / "data" / "clickhouse")
    # Stored, not acknowledged: a spooled span is acknowledged (durable) but not yet in the store.
    rate = stored / elapsed
    print(f"      {rate:,.0f} spans/s stored, sustained over {elapsed:.0f} s ({stored:,.0f} spans)")
    print(
        f"      {accepted / elapsed:,.0f} spans/s acknowledged ({accepted:,}; {refused:,} refused), "
        f"{spooled:.0f} batches left in the spool, {busy:.0f} inserts retried because the engine was short of memory"
    )
    print(
        f"      {inserts:,.0f} inserts of {stored / max(inserts, 1):,.0f} spans on average "
        f"({insert_seconds / max(inserts, 1):.2f} s each, queue to store)"
    )
    print(
        f"      dependency linker: {linked:.0f} runs ({link_seconds / max(linked, 1):.1f} s each on average), "
        f"{unlinked:.0f} failed"
    )
    print(f"      ratio to the in-process limit: {rate / limit:.2f}")
    print(
        f"      server CPU {(user + system) / elapsed:.2f} cores ({system / elapsed:.2f} of them in the kernel), "
        f"peak RSS {rss:,.0f} MiB, {disk:.1f} bytes/span on disk"
    )
    print(f"      load generator CPU {own / elapsed:.2f} cores (on the same machine)")


def _metric(url: str, name: str) -> float:
    """One sample of the collector's Prometheus text (0 when absent)."""
    for line in httpx.get(url, timeout=30).text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return 0.0


def _cpu_seconds(pid: int) -> tuple[float, float]:
    """The process's user and kernel CPU seconds so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / 100, int(fields[12]) / 100  # utime, stime, in clock ticks (100 Hz)


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _bytes_per_span(path: Path) -> float:
    from clickhouse_connect.driver.exceptions import DatabaseError

    from tracehouse.storage import StoreConfig, open_store

    store = open_store(StoreConfig(dsn=f"chdb://{path}"))
    try:
        client = store.client()
        # Merges start as the store opens, and an OPTIMIZE that finds its parts being merged
        # does nothing unless told to throw: 5-minute runs then measured unmerged parts (82-83
        # bytes per span against 29-30 merged).
        for _ in range(120):
            try:
                client.command("OPTIMIZE TABLE otel_traces FINAL SETTINGS optimize_throw_if_noop = 1")
                break
            except DatabaseError:
                time.sleep(1)
        else:
            raise RuntimeError("otel_traces could not be merged for measuring within 2 minutes")
        size, rows = client.query(
            "SELECT sum(bytes_on_disk), sum(rows) FROM system.parts "
            "WHERE active AND database = currentDatabase() AND table = 'otel_traces'"
        ).result_rows[0]
    finally:
        store.close()
    return float(size) / max(1, int(rows))


if __name__ == "__main__":
    main()
