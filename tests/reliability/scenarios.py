"""The long-running scenarios of the reliability tier, shared by its tests (short runs) and by
`make reliability-long` (benchmarks/reliability.py): repeated `kill -9` under load, and a storm
of exporters over every ingest protocol with the query API watched. Each returns the ledger of
what senders were told; the caller compares it with the store (`harness.contract_breaches`)."""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx

from tests.e2e.server import Server
from tests.reliability.harness import (
    REPO,
    Ledger,
    Send,
    grpc_sender,
    otlp_http_sender,
    peak_rss_mib,
    send_until,
    serving,
    zipkin_sender,
)

CRASH_SPANS = 50  # per request of the crash senders
FLEET_SPANS = 1000  # per request of the storm's fleet, a large SDK batch
SIDE_SPANS = 100  # per request of the storm's gRPC, Zipkin and OTLP/JSON senders


@dataclass(frozen=True, slots=True)
class CrashRun:
    kills: int
    ledger: Ledger
    data_dir: Path
    logs: list[str]  # every life's server output (warnings and up), for a failure's message

    def logged_at_kills(self) -> int:
        """Batches found in the write-ahead log at the restarts: answered before the kill, their
        insert unfinished or unconfirmed — the replays that must not double."""
        found = (re.search(r"(\d+) batches of the write-ahead log were not known", line) for line in self.logs)
        return sum(int(match[1]) for match in found if match)


def crash_repeatedly(data_dir: Path, kills: int, senders: int, acks_before_kill: int) -> CrashRun:
    """Start, stream, kill -9 while requests are in flight; `kills` times; then a clean start
    and stop, so the last restart is checked to come up (and replay its spool) too."""
    ledger, logs = Ledger(), []
    for life in range(kills):
        with serving(data_dir) as server:
            stop = threading.Event()
            threads = [
                threading.Thread(target=_stream, args=(server, ledger, stop), name=f"sender-{i}")
                for i in range(senders)
            ]
            for thread in threads:
                thread.start()
            try:
                # A random moment: somewhere in the second half of this life's first 2N acks.
                acks = random.randint(acks_before_kill, 2 * acks_before_kill)
                assert ledger.wait_for_acks(acks, timeout=120), f"no acks: {ledger.statuses}"
                assert server.stop(signal.SIGKILL) == -signal.SIGKILL
            finally:
                stop.set()
                for thread in threads:
                    thread.join(60)
        logs += [f"life {life + 1}: {line}" for line in server.output]
    with serving(data_dir) as server:
        _await_empty_spool(server)  # batches logged or spooled at the last kill, replayed
        assert server.stop() == 0, server.text()
    logs += [f"last life: {line}" for line in server.output]
    return CrashRun(kills, ledger, data_dir, logs)


def _await_empty_spool(server: Server, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        metrics = httpx.get(f"{server.otlp_http}/metrics", timeout=10).text
        left = [line for line in metrics.splitlines() if line.startswith("tracehouse_spool_batches ")]
        if left == ["tracehouse_spool_batches 0.0"]:
            return
        assert time.monotonic() < deadline, f"the spool was not replayed within {timeout:g} s: {left}"
        time.sleep(0.1)


def _stream(server: Server, ledger: Ledger, stop: threading.Event) -> None:
    with httpx.Client(timeout=30) as client:
        send_until(stop, otlp_http_sender(client, server.otlp_http), ledger, CRASH_SPANS)


@dataclass
class Storm:
    ledger: Ledger
    seconds: float
    peak_rss_mib: float
    api_latencies: list[float] = field(default_factory=list)
    api_failures: list[str] = field(default_factory=list)

    def offered_spans(self) -> int:
        return sum(self.ledger.spans.values())


def storm(data_dir: Path, seconds: float, connections: int, *flags: str) -> Storm:
    """Run the fleet and the side senders against a fresh server (default limits, plus `flags`);
    the server is stopped after."""
    with serving(data_dir, *flags) as server:
        ledger, stop = Ledger(), threading.Event()
        api = Storm(ledger, seconds, 0.0)
        with _side_senders(server, ledger, stop), _api_prober(server, api, stop):
            started = time.monotonic()
            fleet = run_fleet(server, data_dir.parent / "fleet.json", connections, seconds)
            stop.set()
        api.seconds = time.monotonic() - started
        ledger.merge(fleet)
        api.peak_rss_mib = peak_rss_mib(server.proc.pid)
        assert server.stop() == 0, server.text()
    return api


def run_fleet(server: Server, out: Path, connections: int, seconds: float) -> Ledger:
    command = [
        sys.executable, "-m", "tests.reliability.loadgen", server.otlp_http, "--connections", str(connections),
        "--spans", str(FLEET_SPANS), "--seconds", str(seconds), "--out", str(out),
    ]  # fmt: skip
    proc = subprocess.Popen(command, cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        _, errors = proc.communicate(timeout=seconds + 180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, errors
    return Ledger.from_json(json.loads(out.read_text()))


@contextmanager
def _side_senders(server: Server, ledger: Ledger, stop: threading.Event) -> Iterator[None]:
    """Two gRPC, two Zipkin and one gzip'd OTLP/JSON sender, in threads, until `stop`."""
    channel = grpc.insecure_channel(server.otlp_grpc)
    clients = [httpx.Client(timeout=60) for _ in range(3)]
    senders: list[Send] = [
        grpc_sender(channel),
        grpc_sender(channel),
        zipkin_sender(clients[0], server.zipkin),
        zipkin_sender(clients[1], server.zipkin),
        otlp_http_sender(clients[2], server.otlp_http, encoding="json"),
    ]
    threads = [threading.Thread(target=send_until, args=(stop, send, ledger, SIDE_SPANS)) for send in senders]
    try:
        for thread in threads:
            thread.start()
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(120)
        for client in clients:
            client.close()
        channel.close()


@contextmanager
def _api_prober(server: Server, storm: Storm, stop: threading.Event) -> Iterator[None]:
    """Ask the query API (search, services) ten times a second while the storm lasts."""
    calls: list[Callable[[httpx.Client], httpx.Response]] = [
        lambda c: c.get(f"{server.ui}/api/v1/traces", params={"service": "reliability", "limit": "20"}),
        lambda c: c.get(f"{server.ui}/api/v1/services"),
    ]

    def probe() -> None:
        with httpx.Client(timeout=30) as client:
            i = 0
            while not stop.is_set():
                started = time.monotonic()
                try:
                    status = calls[i % len(calls)](client).status_code
                except httpx.TransportError as exc:
                    status = type(exc).__name__
                storm.api_latencies.append(time.monotonic() - started)
                if status != 200:
                    storm.api_failures.append(str(status))
                i += 1
                stop.wait(0.1)  # a pace, not an event

    thread = threading.Thread(target=probe, name="api-prober")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(60)
