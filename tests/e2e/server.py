"""`tracehouse serve` (or `collector`, `query`) as a real subprocess on free ports, for end-to-end tests."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

READY_TIMEOUT = 120.0


@dataclass
class Server:
    proc: subprocess.Popen[str]
    ui: str = ""
    otlp_http: str = ""
    otlp_grpc: str = ""
    zipkin: str = ""
    output: list[str] = field(default_factory=list)
    pump: threading.Thread | None = None

    def api(self, path: str, params: dict[str, str | list[str]] | None = None) -> httpx.Response:
        return httpx.get(f"{self.ui}{path}", params=params, timeout=30)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            if self.pump is not None:
                self.pump.join(timeout)
            if self.proc.stdout is not None:
                self.proc.stdout.close()

    def text(self) -> str:
        return "\n".join(self.output)


def start_server(data_dir: Path, *extra: str) -> Server:
    """Start `tracehouse serve` and return once it printed its addresses."""
    return start_tracehouse(
        "serve",
        "--data-dir",
        str(data_dir),
        "--ui-port",
        "0",
        "--otlp-http-port",
        "0",
        "--otlp-grpc-port",
        "0",
        "--zipkin-port",
        "0",
        "--flush-interval",
        "0.05",
        *extra,
    )


def start_tracehouse(*args: str, env: dict[str, str] | None = None, launcher: Sequence[str] = ()) -> Server:
    """Start `tracehouse ARGS` (serve, collector, query) and return once it printed its addresses
    (the `store` line comes last). `launcher` replaces `python -m tracehouse`."""
    command = [*(launcher or (sys.executable, "-m", "tracehouse")), *args]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    server = Server(proc)
    lines: queue.Queue[str | None] = queue.Queue()
    server.pump = threading.Thread(target=_pump, args=(proc, server.output, lines), daemon=True)
    server.pump.start()
    while True:
        try:
            line = lines.get(timeout=READY_TIMEOUT)
        except queue.Empty:
            server.stop(signal.SIGKILL)
            raise AssertionError(f"{args[0]} did not become ready:\n{server.text()}") from None
        if line is None:
            raise AssertionError(f"{args[0]} exited with {server.stop()}:\n{server.text()}")
        if match := re.search(r"UI \+ API\s+(http://\S+?)/ ", line):
            server.ui = match[1]
        elif match := re.search(r"OTLP/HTTP\s+(http://\S+)/v1/traces", line):
            server.otlp_http = match[1]
        elif match := re.search(r"OTLP/gRPC\s+(\S+)", line):
            server.otlp_grpc = match[1]
        elif match := re.search(r"Zipkin\s+(http://\S+)/api/v2/spans", line):
            server.zipkin = match[1]
        elif line.strip().startswith("store "):
            return server


def _pump(proc: subprocess.Popen[str], output: list[str], lines: queue.Queue[str | None]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        output.append(line.rstrip("\n"))
        lines.put(line)
    lines.put(None)
