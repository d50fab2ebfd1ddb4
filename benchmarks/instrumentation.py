"""`make bench-instrumentation`: the latency a FastAPI endpoint pays per request under ``tracehouse-run``,
against plain ``opentelemetry-instrument`` (the OpenTelemetry distro and configurator) and against no
instrumentation at all, all three measured in one run under the same load.

Each variant is a uvicorn process serving ``benchmarks/instrumentation_app.py``; both instrumented ones
export their spans (OTLP/HTTP protobuf, batch processor) to one real ``tracehouse serve`` on free ports.
The load is sequential keep-alive requests with httpx, one client per variant, in interleaved rounds
(the order rotates every round) so that a noisy neighbour hits the variants alike. Reported per variant:
median and p99 latency over every request, the latency added to the bare server's median, and the server
process's CPU time per request; then the ratios tracehouse / OpenTelemetry (latency, added latency, CPU).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.e2e.run_services import clean_env, eventually, free_port, launcher
from tests.e2e.server import Server, start_server

ROOT = Path(__file__).parents[1]
APP = "benchmarks.instrumentation_app:app"
PATH = "/items/42"
SERVICES = {"otel": "bench-otel", "tracehouse": "bench-tracehouse"}
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Variant:
    """One uvicorn process and what was measured on it."""

    name: str
    proc: subprocess.Popen[bytes]
    url: str
    latencies_ns: list[int] = field(default_factory=list)
    cpu_s: float = 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds")
    parser.add_argument("--requests", type=int, default=250, help="requests per round and variant")
    parser.add_argument("--warmup", type=int, default=500, help="requests per variant before measuring")
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}; {args.rounds} rounds x {args.requests} requests per variant, GET {PATH}")
    with tempfile.TemporaryDirectory(prefix="bench-instr-") as tmp, ExitStack() as stack:
        server = start_server(Path(tmp) / "data")
        stack.callback(server.stop)
        print(f"collector: tracehouse serve, OTLP/HTTP {server.otlp_http}")
        variants = [stack.enter_context(running(name, server)) for name in ("bare", "otel", "tracehouse")]
        measure(variants, args.rounds, args.requests, args.warmup)
        report(variants)
        for variant in variants:
            stop(variant)
        print_stored(server, args.warmup + args.rounds * args.requests)


@contextmanager
def running(name: str, server: Server) -> Iterator[Variant]:
    """Start variant ``name`` and wait until it answers; stopped (SIGTERM, it flushes) on exit."""
    port = free_port()
    uvicorn = [sys.executable, "-m", "uvicorn", APP, "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(command(name, server, uvicorn), env=environment(name, server), cwd=ROOT)
    variant = Variant(name, proc, f"http://127.0.0.1:{port}")
    try:
        eventually(lambda: answers(variant), 60)
        print(f"  {name:<11} pid {proc.pid} on {variant.url}")
        yield variant
    finally:
        stop(variant)


def command(name: str, server: Server, uvicorn: list[str]) -> list[str]:
    if name == "otel":
        return [str(Path(sys.executable).parent / "opentelemetry-instrument"), *uvicorn]
    if name == "tracehouse":
        return [launcher(), "--service-name", SERVICES[name], "--endpoint", server.otlp_http, "--", *uvicorn]
    return uvicorn


def environment(name: str, server: Server) -> dict[str, str]:
    """The same settings for both instrumented variants where they have one; OTel's own distro and
    configurator for ``otel`` (with several installed, the first found would be used)."""
    env = clean_env({"OTEL_PYTHON_EXCLUDED_URLS": "health"})
    if name == "otel":
        env.update(
            OTEL_PYTHON_DISTRO="distro",
            OTEL_PYTHON_CONFIGURATOR="configurator",
            OTEL_SERVICE_NAME=SERVICES[name],
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_ENDPOINT=server.otlp_http,
            OTEL_METRICS_EXPORTER="none",
            OTEL_LOGS_EXPORTER="none",
        )
    return env


def answers(variant: Variant) -> bool:
    if variant.proc.poll() is not None:
        raise SystemExit(f"{variant.name} exited with {variant.proc.returncode}")
    try:
        return httpx.get(f"{variant.url}/health", timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


def stop(variant: Variant) -> None:
    if variant.proc.poll() is None:
        variant.proc.send_signal(signal.SIGTERM)
        variant.proc.wait(30)


def measure(variants: list[Variant], rounds: int, requests: int, warmup: int) -> None:
    clients = {v.name: httpx.Client(base_url=v.url, timeout=30) for v in variants}
    try:
        for variant in variants:
            timed(clients[variant.name], warmup)
        for n in range(rounds):
            order = variants[n % len(variants) :] + variants[: n % len(variants)]
            for variant in order:
                before = cpu_seconds(variant.proc.pid)
                variant.latencies_ns += timed(clients[variant.name], requests)
                variant.cpu_s += cpu_seconds(variant.proc.pid) - before
            medians = ", ".join(f"{v.name} {ms(statistics.median(v.latencies_ns[-requests:]))}" for v in variants)
            print(f"  round {n + 1:>2}/{rounds}: medians {medians}", flush=True)
    finally:
        for client in clients.values():
            client.close()


def timed(client: httpx.Client, count: int) -> list[int]:
    latencies = []
    for _ in range(count):
        began = time.perf_counter_ns()
        response = client.get(PATH)
        latencies.append(time.perf_counter_ns() - began)
        if response.status_code != 200:
            raise SystemExit(f"{client.base_url} answered {response.status_code}")
    return latencies


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` (its threads included: the exporter's too)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def ms(ns: float) -> str:
    return f"{ns / 1e6:.3f} ms"


def report(variants: list[Variant]) -> None:
    by_name = {v.name: v for v in variants}
    bare = statistics.median(by_name["bare"].latencies_ns)
    print(f"\n{'variant':<11} {'median':>10} {'p99':>10} {'added':>10} {'CPU/request':>12}")
    for v in variants:
        median, p99 = statistics.median(v.latencies_ns), percentile(v.latencies_ns, 0.99)
        cpu_us = v.cpu_s / len(v.latencies_ns) * 1e6
        print(f"{v.name:<11} {ms(median):>10} {ms(p99):>10} {ms(median - bare):>10} {cpu_us:>9.0f} µs")
    otel, ours = by_name["otel"], by_name["tracehouse"]
    latency = statistics.median(ours.latencies_ns) / statistics.median(otel.latencies_ns)
    added = (statistics.median(ours.latencies_ns) - bare) / (statistics.median(otel.latencies_ns) - bare)
    cpu = ours.cpu_s / otel.cpu_s
    print(f"\ntracehouse / otel: latency {latency:.3f}, added latency {added:.3f}, server CPU {cpu:.3f}")
    print(f"target (latency within 5 % of plain OpenTelemetry): {'met' if latency <= 1.05 else 'NOT met'}")


def percentile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def print_stored(server: Server, sent: int) -> None:
    """How many server spans of each instrumented variant the collector stored (the export really ran),
    awaited for a few seconds until all ``sent`` requests' spans are there."""
    for name, service in SERVICES.items():
        deadline = time.monotonic() + 10
        while (spans := stored(server, service)) < sent and time.monotonic() < deadline:
            time.sleep(0.2)
        print(f"stored: {name} {spans:,} server spans of {sent:,} requests")


def stored(server: Server, service: str) -> int:
    answer = server.api(f"/api/v1/services/{service}/operations").json()
    return sum(op["spans"] for op in answer.get("operations", []) if op["name"] == "GET /items/{item_id}")


if __name__ == "__main__":
    main()
