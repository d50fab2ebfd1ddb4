"""The demo microservices of the compose files: the services of `tracehouse demo` (demo/topology.py),
each launched by tracehouse-run and sending spans and breaker stats to a collector
(`TRACEHOUSE_ENDPOINT`), plus traffic to the gateway (`DEMO_RATE` requests/s). The services listen on
loopback ports from `DEMO_FIRST_PORT` (8000) on, keep their SQLite files and job queue in `DEMO_WORKDIR`,
and run the payments fault every `DEMO_FAULT_CYCLE` seconds (120). Stops every child on SIGTERM or Ctrl-C.

Runs inside one container, so the services reach each other on loopback.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tracehouse.demo.faults import FaultSchedule
from tracehouse.demo.processes import Children, Interrupted, StopRequest, wait_for_http
from tracehouse.demo.topology import SERVICES, Launch, command, service_env

SERVICE_TIER = 1


def launch_from_env() -> Launch:
    first_port = int(os.environ.get("DEMO_FIRST_PORT", "8000"))
    workdir = Path(os.environ.get("DEMO_WORKDIR") or tempfile.mkdtemp(prefix="tracehouse-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    faults = FaultSchedule(float(os.environ.get("DEMO_FAULT_CYCLE", "120")), time.time())
    ports = {service.name: first_port + number for number, service in enumerate(SERVICES)}
    return Launch(ports, workdir, os.environ["TRACEHOUSE_ENDPOINT"], faults)


def main() -> int:
    rate = float(os.environ.get("DEMO_RATE", "5"))
    launch = launch_from_env()
    stop = StopRequest()
    stop.install()
    env = service_env(os.environ)
    with Children(stop) as children:
        try:
            procs = {
                s.name: children.start(s.name, command(s, launch), SERVICE_TIER, cwd=launch.workdir, env=env)
                for s in SERVICES
            }
            for service in SERVICES:
                url = f"{launch.url(service.name)}/health"
                wait_for_http(url, procs[service.name], 120, f"demo service {service.name}", stop)
            print(f"demo: {len(SERVICES)} services up, sending {rate:g} requests/s to the gateway", flush=True)
            _traffic(launch.url("gateway"), rate, stop)
        except Interrupted:
            pass
    return 0


def _traffic(gateway: str, rate: float, stop: StopRequest) -> None:
    with httpx.Client(timeout=10.0) as client:
        while not stop.is_set():
            try:
                client.get(f"{gateway}/work")
            except httpx.HTTPError as exc:
                print(f"demo: gateway: {exc}", flush=True)
            time.sleep(1 / rate)


if __name__ == "__main__":
    sys.exit(main())
