"""A fleet of OTLP/HTTP exporters in one process: `--connections` keep-alive connections, each
sending fresh traces back to back for `--seconds`, honouring Retry-After as exporters do. Writes
its ledger (JSON) to `--out`. Run apart from the test process so the test's own measurements
(query API latency) do not queue behind the fleet for the GIL.

    python -m tests.reliability.loadgen http://127.0.0.1:4318 --connections 1100 --out ledger.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from tests.reliability.harness import Answer, Ledger, OtlpTemplate, RawHttpConnection


async def exporter(base: str, template: OtlpTemplate, ledger: Ledger, deadline: float) -> None:
    connection = RawHttpConnection(base)
    try:
        while time.monotonic() < deadline:
            trace, body = template.new()
            started = time.monotonic()
            try:
                status, headers = await connection.post("/v1/traces", body, "application/x-protobuf")
            except OSError as exc:
                ledger.record(trace, Answer(type(exc).__name__, False, False, None, time.monotonic() - started))
                await asyncio.sleep(0.05)
                continue
            retry_after = headers.get("retry-after", "")
            delay = float(retry_after) if retry_after.isdigit() else None
            ledger.record(trace, Answer(str(status), status == 200, True, delay, time.monotonic() - started))
            if status != 200:
                await asyncio.sleep(delay or 1.0)
    finally:
        connection.close()


async def fleet(base: str, connections: int, spans: int, padding: int, seconds: float) -> Ledger:
    ledger = Ledger()
    template = OtlpTemplate(spans, padding)
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(exporter(base, template, ledger, deadline) for _ in range(connections)))
    return ledger


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", help="the OTLP/HTTP receiver's base URL")
    parser.add_argument("--connections", type=int, default=1100)
    parser.add_argument("--spans", type=int, default=1000, help="spans per request (one trace)")
    parser.add_argument("--padding", type=int, default=0, help="bytes of an extra attribute per span")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    started = time.monotonic()
    ledger = asyncio.run(fleet(args.base, args.connections, args.spans, args.padding, args.seconds))
    document = {**ledger.to_json(), "elapsed": time.monotonic() - started}
    args.out.write_text(json.dumps(document))


if __name__ == "__main__":
    main()
