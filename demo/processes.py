"""Child processes for the demo and end-to-end tests: started together, always stopped.

`Children` is a context manager: on exit (normal, Ctrl-C or error) it sends SIGTERM to
every child, waits, and kills what is still alive, so no process outlives it.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Sequence
from typing import IO, Any

import httpx


class ChildFailed(RuntimeError):
    """A child process exited or never became ready."""


class Children:
    def __init__(self) -> None:
        self._procs: list[tuple[str, subprocess.Popen[Any]]] = []

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def start(self, name: str, command: Sequence[str], **popen: Any) -> subprocess.Popen[Any]:
        proc = subprocess.Popen(command, **popen)
        self._procs.append((name, proc))
        return proc

    def stop_all(self, timeout: float = 15.0) -> None:
        """Stop children newest first, each before the next, so services flush their last
        spans into a server that is still running."""
        for _, proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs.clear()


def wait_for_line(proc: subprocess.Popen[Any], marker: str, timeout: float) -> list[str]:
    """Read `proc`'s stdout until a line contains `marker`; returns the lines read.
    The rest of its output keeps being drained (and echoed) in the background."""
    assert proc.stdout is not None
    stream: IO[Any] = proc.stdout
    lines: list[str] = []
    found = threading.Event()

    def pump() -> None:
        for raw in stream:
            line = raw.decode() if isinstance(raw, bytes) else raw
            lines.append(line.rstrip("\n"))
            print(line, end="", flush=True)
            if marker in line:
                found.set()

    threading.Thread(target=pump, daemon=True).start()
    if not found.wait(timeout):
        raise ChildFailed(f"no {marker!r} from {proc.args!r} within {timeout:g} s (exit code {proc.poll()})")
    return lines


def wait_for_http(url: str, timeout: float, what: str) -> None:
    """Poll `url` until it answers 200 (a readiness check, bounded by `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise ChildFailed(f"{what} did not answer {url} within {timeout:g} s")
