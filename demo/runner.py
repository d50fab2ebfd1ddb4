"""`tracehouse demo`: the server plus demo services with traffic, all as child processes.

Shows progress while starting, prints where to look, and stops every process it started
on Ctrl-C, on SIGTERM or after `--duration` — it never leaves orphans.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tracehouse.demo.processes import ChildFailed, Children, wait_for_http, wait_for_line
from tracehouse.options import Option, resolve


def _default_data_dir(_: dict[str, Any]) -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "tracehouse-demo"


DEMO_OPTIONS = (
    Option(
        "--data-dir",
        "data directory of the demo's server (kept between runs)",
        _default_data_dir,
        Path,
        "DIR",
        "~/.local/share/tracehouse-demo",
    ),
    Option("--ui-port", "port of the UI and query API (0: any free port)", 16686, int, "PORT"),
    Option("--otlp-http-port", "port of the OTLP/HTTP receiver (0: any free port)", 4318, int, "PORT"),
    Option("--otlp-grpc-port", "port of the OTLP/gRPC receiver (0: any free port)", 4317, int, "PORT"),
    Option("--zipkin-port", "port of the Zipkin v2 receiver (0: any free port)", 9411, int, "PORT"),
    Option("--rate", "requests per second sent to the gateway", 5.0, float, "N"),
    Option("--duration", "seconds to run; 0 runs until Ctrl-C", 0.0, float, "SECONDS"),
)


@dataclass(frozen=True, slots=True)
class DemoService:
    name: str
    calls: tuple[str, ...]
    error_rate: float
    latency_ms: float
    fault_cycle: float = 0.0


#: gateway -> orders -> inventory, and gateway -> payments; payments is slow, then fails, each
#: two minutes, so the gateway's breaker on it opens, its fallback answers, and it recovers.
SERVICES = (
    DemoService("inventory", (), 0.02, 4.0),
    DemoService("payments", (), 0.05, 12.0, fault_cycle=120.0),
    DemoService("orders", ("inventory",), 0.01, 6.0),
    DemoService("gateway", ("orders", "payments"), 0.0, 2.0),
)


def run_demo(args: argparse.Namespace) -> int:
    options = resolve(args, DEMO_OPTIONS)
    if options["rate"] <= 0:
        raise ValueError(f"--rate must be positive (got {options['rate']})")
    signal.signal(signal.SIGTERM, _raise_interrupt)
    with Children() as children:
        ui, otlp = _start_server(children, options)
        gateway = _start_services(children, otlp)
        _traffic(gateway, ui, options["rate"], options["duration"])
    return 0


def _raise_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _start_server(children: Children, options: dict[str, Any]) -> tuple[str, str]:
    """Start `tracehouse serve`; returns the base URLs of its UI/API and OTLP/HTTP receiver."""
    _step(1, "starting tracehouse serve (embedded ClickHouse, first start takes a few seconds)")
    command = [sys.executable, "-m", "tracehouse", "serve", "--data-dir", str(options["data_dir"])]
    for flag in ("ui_port", "otlp_http_port", "otlp_grpc_port", "zipkin_port"):
        command += [f"--{flag.replace('_', '-')}", str(options[flag])]
    server = children.start("tracehouse serve", [*command, "--log-level", "warning"], stdout=subprocess.PIPE)
    announced = "\n".join(wait_for_line(server, "  store ", timeout=180))
    ui = re.search(r"UI \+ API\s+(http://\S+?)/ ", announced)
    otlp = re.search(r"OTLP/HTTP\s+(http://\S+)/v1/traces", announced)
    if not ui or not otlp:
        raise ChildFailed(f"could not read the server's addresses from:\n{announced}")
    return ui[1], otlp[1]


def _start_services(children: Children, otlp_endpoint: str) -> str:
    ports = {s.name: _free_port() for s in SERVICES}
    _step(2, f"starting {len(SERVICES)} demo services through tracehouse-run: {', '.join(ports)}")
    for service in SERVICES:
        command = [
            sys.executable,
            "-m",
            "tracehouse.instrumentation",
            "--service-name",
            service.name,
            "--endpoint",
            otlp_endpoint,
            "--",
            sys.executable,
            "-m",
            "tracehouse.demo.service",
            service.name,
            "--port",
            str(ports[service.name]),
            "--error-rate",
            str(service.error_rate),
            "--latency-ms",
            str(service.latency_ms),
            "--fault-cycle",
            str(service.fault_cycle),
        ]
        for callee in service.calls:
            command += ["--call", f"{callee}=http://127.0.0.1:{ports[callee]}"]
        children.start(service.name, command)
    for name, port in ports.items():
        wait_for_http(f"http://127.0.0.1:{port}/health", timeout=60, what=f"demo service {name}")
    return f"http://127.0.0.1:{ports['gateway']}"


def _traffic(gateway: str, ui: str, rate: float, duration: float) -> None:
    _step(3, f"sending {rate:g} requests/s to the gateway" + (f" for {duration:g} s" if duration else ""))
    sent = failed = 0
    deadline = time.monotonic() + duration if duration else None
    with httpx.Client(timeout=10.0) as client:
        while deadline is None or time.monotonic() < deadline:
            trace_id = os.urandom(16).hex()
            parent = os.urandom(8).hex()
            response = client.get(f"{gateway}/work", headers={"traceparent": f"00-{trace_id}-{parent}-01"})
            sent += 1
            failed += response.status_code >= 500
            if sent == 1:
                _announce(ui, trace_id)
            time.sleep(1 / rate)
    print(f"\ndemo finished: {sent} requests sent, {failed} answered with an error", flush=True)


def _announce(ui: str, trace_id: str) -> None:
    print(
        f"\nTracehouse demo is running.\n"
        f"  Dashboard      {ui}/   (service map: {ui}/map)\n"
        f"  Breakers       curl {ui}/api/v1/breakers   (Hystrix Dashboard: {ui}/turbine.stream?cluster=gateway)\n"
        f"  Services       curl {ui}/api/v1/services\n"
        f"  A trace        curl {ui}/api/v1/traces/{trace_id}\n"
        f"  API docs       {ui}/docs\n"
        f"Press Ctrl-C to stop the demo and every process it started.\n",
        flush=True,
    )


def _step(number: int, text: str) -> None:
    print(f"[{number}/3] {text}", flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
