"""`make reliability-long`: the reliability tier's crash and overload scenarios, run long.

    python -m benchmarks.reliability --kills 20 --storm-seconds 120

Crash: `--kills` times, senders stream OTLP/HTTP spans into `tracehouse serve` and it is killed
with SIGKILL mid-stream, then restarted on the same data directory. Overload: a fleet of
`--connections` exporters plus gRPC, Zipkin and OTLP/JSON senders against default limits for
`--storm-seconds`, the query API asked ten times a second. Both end by comparing what senders
were told with what the store holds; the figures go to docs/reliability.md. Exits 1 when the
contract was broken.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from tests.reliability.harness import contract_breaches, percentile, stored_traces
from tests.reliability.scenarios import crash_repeatedly, storm


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=20, help="kill -9 / restart cycles")
    parser.add_argument(
        "--senders",
        type=int,
        default=12,
        help="sender threads during the crash runs (enough to catch logged batches mid-insert)",
    )
    parser.add_argument("--storm-seconds", type=float, default=120.0, help="length of the overload storm")
    parser.add_argument("--connections", type=int, default=1100, help="exporters in the storm's fleet")
    args = parser.parse_args()
    breaches = []
    with tempfile.TemporaryDirectory() as directory:
        breaches += crash(Path(directory) / "crash", args.kills, args.senders)
        breaches += overload(Path(directory) / "storm", args.storm_seconds, args.connections)
    for breach in breaches:
        print(f"CONTRACT BROKEN: {breach}", flush=True)
    return 1 if breaches else 0


def crash(data_dir: Path, kills: int, senders: int) -> list[str]:
    print(f"[1/2] crash: {kills} x (stream OTLP/HTTP, kill -9, restart) with {senders} senders ...", flush=True)
    started = time.monotonic()
    run = crash_repeatedly(data_dir, kills, senders, acks_before_kill=100)
    stored = stored_traces(data_dir)
    ledger = run.ledger
    unsettled = set(ledger.unsettled)
    print(
        f"      {time.monotonic() - started:.0f} s, {kills} kills: {ledger.acked_spans():,} spans acknowledged "
        f"({len(ledger.acked):,} requests), all stored once: {not contract_breaches(ledger, stored)}; "
        f"{len(unsettled)} requests cut off by the kills ({len(unsettled & set(stored))} stored anyway, whole); "
        f"{run.logged_at_kills()} batches of the write-ahead log replayed at the restarts; "
        f"answers {dict(ledger.statuses)}",
        flush=True,
    )
    return contract_breaches(ledger, stored)


def overload(data_dir: Path, seconds: float, connections: int) -> list[str]:
    print(f"[2/2] overload: {connections} exporters + gRPC/Zipkin/JSON senders for {seconds:g} s ...", flush=True)
    result = storm(data_dir, seconds, connections)
    ledger = result.ledger
    accepted, offered = ledger.acked_spans(), result.offered_spans()
    stored = stored_traces(data_dir)
    print(
        f"      {result.seconds:.0f} s: offered {offered / result.seconds:,.0f} spans/s, accepted "
        f"{accepted / result.seconds:,.0f} spans/s ({offered / max(accepted, 1):.1f}x); {len(ledger.refused):,} "
        f"refusals, {ledger.refusals_without_retry_after} without a retry delay; answers {dict(ledger.statuses)}\n"
        f"      acknowledgement p50/p99/max {_seconds(ledger.latencies['acked'])}, refusal p50/p99/max "
        f"{_seconds(ledger.latencies['refused'])}\n"
        f"      peak RSS {result.peak_rss_mib:,.0f} MiB; query API p50/p99/max {_seconds(result.api_latencies)} over "
        f"{len(result.api_latencies)} calls, {len(result.api_failures)} failed; all acknowledged spans stored once: "
        f"{not contract_breaches(ledger, stored)}",
        flush=True,
    )
    return contract_breaches(ledger, stored) + [f"query API failed: {f}" for f in result.api_failures]


def _seconds(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{percentile(values, 0.5):.2f}/{percentile(values, 0.99):.2f}/{max(values):.2f} s"


if __name__ == "__main__":
    sys.exit(main())
