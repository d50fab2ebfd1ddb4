"""Back-pressure end to end: senders far above what `tracehouse serve` will queue get
retryable refusals (503 + Retry-After, never a hang or a 500), the server's memory stays
under a stated ceiling, the query API keeps answering, and afterwards every acknowledged
span is stored exactly once and nothing else is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.e2e.server import start_server

pytestmark = pytest.mark.e2e

SENDERS = 32
STORM_SECONDS = 6.0
TRACES, SPANS = 10, 10  # per request: 100 spans
RSS_CEILING_MIB = 1536  # stated ceiling for the all-in-one server (embedded ClickHouse included)

COUNT_SCRIPT = """
import json, sys
from tracehouse.storage import StoreConfig, open_store
store = open_store(StoreConfig(dsn="chdb://" + sys.argv[1]))
rows = store.client().query("SELECT TraceId, count(), uniqExact(SpanId) FROM otel_traces GROUP BY TraceId").result_rows
print(json.dumps(rows))
store.close()
"""


def request_body() -> tuple[bytes, list[str]]:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="storm")))
    spans = resource_spans.scope_spans.add().spans
    now = time.time_ns()
    trace_ids = []
    for _ in range(TRACES):
        trace_id = os.urandom(16)
        trace_ids.append(trace_id.hex())
        for i in range(SPANS):
            span = spans.add(trace_id=trace_id, span_id=os.urandom(8), name=f"op-{i}")
            span.start_time_unix_nano, span.end_time_unix_nano = now, now + 1000
    return request.SerializeToString(), trace_ids


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_storm_gets_retryable_refusals_and_loses_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(
        data, "--flush-interval", "0.5", "--max-queued-spans", "1500", "--log-level", "warning"
    )  # fmt: skip
    acked: list[str] = []
    statuses: Counter[int] = Counter()
    missing_retry_after = 0
    peak_rss = 0.0
    api_latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + STORM_SECONDS

    def send() -> None:
        nonlocal missing_retry_after
        with httpx.Client(timeout=60) as client:
            while time.monotonic() < deadline:
                body, trace_ids = request_body()
                response = client.post(
                    f"{server.otlp_http}/v1/traces", content=body, headers={"content-type": "application/x-protobuf"}
                )
                with lock:
                    statuses[response.status_code] += 1
                    if response.status_code == 200:
                        acked.extend(trace_ids)
                    elif "retry-after" not in response.headers:
                        missing_retry_after += 1

    def watch() -> None:
        nonlocal peak_rss
        while time.monotonic() < deadline:
            peak_rss = max(peak_rss, rss_mib(server.proc.pid))
            started = time.monotonic()
            assert server.api("/api/v1/services").status_code == 200
            api_latencies.append(time.monotonic() - started)
            time.sleep(0.2)

    threads = [threading.Thread(target=send) for _ in range(SENDERS)] + [threading.Thread(target=watch)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert server.stop() == 0
    p99 = sorted(api_latencies)[int(0.99 * (len(api_latencies) - 1))] if api_latencies else float("nan")
    print(f"storm: {dict(statuses)}, {len(acked) * SPANS} spans acknowledged, peak RSS {peak_rss:.0f} MiB, "
          f"query API p99 {p99 * 1000:.0f} ms over {len(api_latencies)} calls")  # fmt: skip

    assert set(statuses) <= {200, 503}, statuses
    assert statuses[503] > 0, f"the storm was not above capacity: {statuses}"
    assert statuses[200] > 0
    assert missing_retry_after == 0
    assert peak_rss < RSS_CEILING_MIB, f"server RSS peaked at {peak_rss:.0f} MiB"
    assert api_latencies, "the query API was never asked"

    counted = subprocess.run(
        [sys.executable, "-c", COUNT_SCRIPT, str(data / "clickhouse")], capture_output=True, text=True, timeout=120
    )
    assert counted.returncode == 0, counted.stderr
    stored = {trace_id: (count, unique) for trace_id, count, unique in json.loads(counted.stdout)}
    assert set(stored) == set(acked)  # every acknowledged trace, and only those
    assert all(count == unique == SPANS for count, unique in stored.values())  # each span exactly once
