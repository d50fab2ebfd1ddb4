"""`tracehouse demo`: the server plus six demo services with traffic, all as child processes.

Shows a line per process as it becomes ready, prints where to look, narrates the fault scenario,
and stops every process it started (and theirs) on Ctrl-C, on SIGTERM or after `--duration` —
it never leaves orphans behind.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracehouse.demo.faults import PHASE_STARTS, FaultSchedule, Phase
from tracehouse.demo.processes import ChildFailed, Children, Interrupted, StopRequest, wait_for_http, wait_for_line
from tracehouse.demo.topology import SERVICES, Launch, command, service_env
from tracehouse.demo.traffic import TrafficStats, first_traceparent, send_traffic
from tracehouse.options import Option, resolve

__all__ = ["DEMO_OPTIONS", "run_demo"]


def _default_data_dir(_: dict[str, Any]) -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "tracehouse-demo"


DEMO_OPTIONS = (
    Option(
        "--data-dir",
        "data directory of the demo: the server's store and the services' databases (kept between runs)",
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
    Option(
        "--fault-cycle",
        "seconds of one round of the fault scenario (payments healthy, slow, failing, recovering); 0: no faults",
        120.0,
        float,
        "SECONDS",
    ),
    Option(
        "--link-interval",
        "seconds between dependency-linker runs (how soon the map shows calls)",
        5.0,
        float,
        "SECONDS",
    ),
    Option("--duration", "seconds to run; 0 runs until Ctrl-C", 0.0, float, "SECONDS"),
)

SERVER_READY_TIMEOUT = 180.0
SERVICE_READY_TIMEOUT = 90.0
#: Stop tiers: the services first, then the server they send their last spans to.
SERVER_TIER, SERVICE_TIER = 0, 1


@dataclass(frozen=True, slots=True)
class ServerAddresses:
    ui: str
    otlp_http: str


def run_demo(args: argparse.Namespace) -> int:
    options = _validated(resolve(args, DEMO_OPTIONS))
    stop = StopRequest()
    stop.install()
    print(f"Tracehouse demo: tracehouse serve and {len(SERVICES)} services, each its own process", flush=True)
    try:
        with Children(stop) as children:
            server = _start_server(children, options)
            launch = _start_services(children, server.otlp_http, options)
            trace_id, traceparent = first_traceparent()
            _announce(server.ui, trace_id, launch.faults)
            stats = asyncio.run(_traffic(launch, options, traceparent, stop))
            print(f"\n{stats.summary()}\nstopping the {len(children) - 1} services, then the server", flush=True)
    except Interrupted:
        print("interrupted while starting; every process the demo started has stopped", flush=True)
        return 130
    except ChildFailed as exc:
        print(f"tracehouse demo: error: {exc}; every process the demo started has stopped", file=sys.stderr)
        return 1
    print("every process the demo started has stopped", flush=True)
    return 0


def _validated(options: dict[str, Any]) -> dict[str, Any]:
    if not 0 < options["rate"] <= 1000:
        raise ValueError(f"--rate must be in (0, 1000] (got {options['rate']})")
    if options["duration"] < 0:
        raise ValueError(f"--duration must be 0 or more (got {options['duration']})")
    if options["fault_cycle"] != 0 and options["fault_cycle"] < 10:
        raise ValueError(f"--fault-cycle must be 0 or at least 10 seconds (got {options['fault_cycle']})")
    return options


def _start_server(children: Children, options: dict[str, Any]) -> ServerAddresses:
    """Start `tracehouse serve` on the demo's store; returns its UI/API and OTLP/HTTP base URLs."""
    started = time.monotonic()
    command = [sys.executable, "-m", "tracehouse", "serve", "--data-dir", str(options["data_dir"] / "store")]
    for flag in ("ui_port", "otlp_http_port", "otlp_grpc_port", "zipkin_port", "link_interval"):
        command += [f"--{flag.replace('_', '-')}", str(options[flag])]
    command += ["--log-level", "warning"]
    server = children.start("tracehouse serve", command, tier=SERVER_TIER, stdout=subprocess.PIPE)
    announced = "\n".join(wait_for_line(server, "  store ", SERVER_READY_TIMEOUT, "tracehouse serve", children.stop))
    ui = re.search(r"UI \+ API\s+(http://\S+?)/ ", announced)
    otlp = re.search(r"OTLP/HTTP\s+(http://\S+)/v1/traces", announced)
    if not ui or not otlp:
        raise ChildFailed(f"could not read the server's addresses from:\n{announced}")
    _ready("tracehouse serve", server.pid, f"{ui[1]}/", f"store, API and UI ({time.monotonic() - started:.1f} s)")
    return ServerAddresses(ui[1], otlp[1])


def _start_services(children: Children, otlp_endpoint: str, options: dict[str, Any]) -> Launch:
    """Start every service at once (through tracehouse-run), then report each as it answers."""
    workdir = options["data_dir"] / "services"
    workdir.mkdir(parents=True, exist_ok=True)
    faults = FaultSchedule(options["fault_cycle"], time.time())
    launch = Launch({s.name: _free_port() for s in SERVICES}, workdir, otlp_endpoint, faults)
    env = service_env(os.environ)
    procs = {
        s.name: children.start(s.name, command(s, launch), tier=SERVICE_TIER, cwd=workdir, env=env) for s in SERVICES
    }
    for service in SERVICES:
        url = launch.url(service.name)
        what = f"demo service {service.name}"
        wait_for_http(f"{url}/health", procs[service.name], SERVICE_READY_TIMEOUT, what, children.stop)
        _ready(service.name, procs[service.name].pid, url, service.role)
    return launch


def _ready(name: str, pid: int, url: str, what: str) -> None:
    print(f"  ready  {name:<17} pid {pid:<8} {url:<27} {what}", flush=True)


def _announce(ui: str, trace_id: str, faults: FaultSchedule) -> None:
    print(
        f"\nTracehouse demo is running. Open {ui}/\n"
        f"  Service map    {ui}/map       gateway, orders, inventory, payments, fraud, worker; the SQLite\n"
        f"                 {' ' * len(ui)}            databases and the shipments queue as nodes of their own\n"
        f"  Traces         {ui}/          search and open one; the first request: {ui}/trace/{trace_id}\n"
        f"  Breakers wall  {ui}/breakers  orders.payments opens while payments is slow or failing\n"
        f"  Hystrix stream {ui}/turbine.stream?cluster=orders  (for the original Hystrix Dashboard)\n"
        f"  API            {ui}/docs\n"
        f"{_fault_plan(faults)}\n"
        f"Press Ctrl-C to stop the demo and every process it started.\n",
        flush=True,
    )


def _fault_plan(faults: FaultSchedule) -> str:
    if faults.cycle <= 0:
        return "Fault scenario off (--fault-cycle 0)."
    ends = [start for start, _ in PHASE_STARTS[1:]] + [1.0]
    parts = [
        f"{phase} {(end - start) * faults.cycle:.0f} s" for (start, phase), end in zip(PHASE_STARTS, ends, strict=True)
    ]
    return f"Fault scenario, every {faults.cycle:g} s: payments " + ", ".join(parts) + "."


_NARRATION = {
    Phase.SLOW: "payments is slow (+1 s a call): orders' calls time out after 0.5 s, its breaker "
    "orders.payments opens and the fallback answers",
    Phase.FAILING: "payments fails every call: orders.payments stays open, each half-open trial fails",
    Phase.RECOVERING: "payments is healthy again: the next half-open trial closes orders.payments",
    Phase.HEALTHY: "a new round: all healthy",
}


class _Narrator:
    """Prints a line whenever the fault scenario enters a new phase."""

    def __init__(self, faults: FaultSchedule) -> None:
        self.faults = faults
        self.phase = Phase.HEALTHY  # so a fault already under way when traffic starts is told

    def __call__(self) -> None:
        now = time.time()
        phase = self.faults.phase(now)
        if phase is not self.phase:
            self.phase = phase
            print(f"[{now - self.faults.epoch:6.0f} s] {_NARRATION[phase]}", flush=True)


async def _traffic(launch: Launch, options: dict[str, Any], traceparent: str, stop: StopRequest) -> TrafficStats:
    """Traffic until Ctrl-C, SIGTERM or the end of ``--duration``, whichever comes first."""
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    def wake() -> None:
        loop.call_soon_threadsafe(done.set)

    stop.wake = wake
    if stop.is_set():
        done.set()
    if options["duration"]:
        loop.call_later(options["duration"], done.set)
    rate = options["rate"]
    print(f"sending {rate:g} requests/s to the gateway" + _for(options["duration"]), flush=True)
    try:
        return await send_traffic(launch.url("gateway"), rate, done, traceparent, _Narrator(launch.faults))
    finally:
        stop.wake = None


def _for(duration: float) -> str:
    return f" for {duration:g} s" if duration else ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
