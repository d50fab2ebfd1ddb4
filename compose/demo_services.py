"""The demo microservices of the compose files: the services of `tracehouse demo`, each launched
by tracehouse-run and sending spans and breaker stats to a collector (`TRACEHOUSE_ENDPOINT`),
plus traffic to the gateway (`DEMO_RATE` requests/s). The services listen on loopback ports from
`DEMO_FIRST_PORT` (8000) on. Stops every child on SIGTERM or Ctrl-C.

Runs inside one container, so the services reach each other on loopback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx

from tracehouse.demo.processes import Children, wait_for_http
from tracehouse.demo.runner import SERVICES, DemoService


def service_command(service: DemoService, endpoint: str, ports: dict[str, int]) -> list[str]:
    """The command line `tracehouse demo` uses for `service`, sending to `endpoint`."""
    command = [
        sys.executable, "-m", "tracehouse.instrumentation", "--service-name", service.name, "--endpoint", endpoint,
        "--", sys.executable, "-m", "tracehouse.demo.service", service.name, "--port", str(ports[service.name]),
        "--error-rate", str(service.error_rate), "--latency-ms", str(service.latency_ms),
        "--fault-cycle", str(service.fault_cycle),
    ]  # fmt: skip
    for callee in service.calls:
        command += ["--call", f"{callee}=http://127.0.0.1:{ports[callee]}"]
    return command


def main() -> int:
    endpoint = os.environ["TRACEHOUSE_ENDPOINT"]
    rate = float(os.environ.get("DEMO_RATE", "5"))
    first_port = int(os.environ.get("DEMO_FIRST_PORT", "8000"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ports = {service.name: first_port + number for number, service in enumerate(SERVICES)}
    with Children() as children:
        for service in SERVICES:
            children.start(service.name, service_command(service, endpoint, ports), stdout=subprocess.DEVNULL)
        for name, port in ports.items():
            wait_for_http(f"http://127.0.0.1:{port}/health", timeout=120, what=f"demo service {name}")
        print(f"demo: {len(SERVICES)} services up, sending {rate:g} requests/s to the gateway", flush=True)
        with httpx.Client(timeout=10.0) as client:
            while True:
                try:
                    client.get(f"http://127.0.0.1:{ports['gateway']}/work")
                except httpx.HTTPError as exc:
                    print(f"demo: gateway: {exc}", flush=True)
                time.sleep(1 / rate)


if __name__ == "__main__":
    sys.exit(main())
