"""Child processes for the demo and end-to-end tests: started together, always stopped.

Each child runs in a session (and process group) of its own, so stopping it reaches whatever it
started in turn. On Linux each child also gets SIGTERM from the kernel when the process that started
it dies, even by SIGKILL (`prctl(PR_SET_PDEATHSIG)`), so a killed demo leaves no services running
(all of them at once then: the tiers' order, services before the server, cannot hold).
`Children` is a context manager: on exit (normal, Ctrl-C, SIGTERM or error) it
sends SIGTERM to every group, newest tier first, waits, then kills what is still alive — no
process outlives it. Ctrl-C and SIGTERM never interrupt it halfway: `StopRequest` turns them into
a flag checked at safe points (never inside `Popen`, where a child could be started unrecorded),
and they are ignored while the children stop (bounded in time), so a second Ctrl-C cannot cut it short.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any

import httpx

__all__ = ["Child", "ChildFailed", "Children", "Interrupted", "StopRequest", "wait_for_http", "wait_for_line"]

_HELD = (signal.SIGINT, signal.SIGTERM)
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
if _LIBC is not None:  # looked up once here, not in each forked child
    _PRCTL = _LIBC.prctl
    _PRCTL.argtypes = [ctypes.c_int, ctypes.c_ulong]
    _SIGNAL = _LIBC.signal
    _SIGNAL.argtypes = [ctypes.c_int, ctypes.c_void_p]
    _SIGNAL.restype = ctypes.c_void_p


class ChildFailed(RuntimeError):
    """A child process exited or never became ready."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived while the children were starting."""


class StopRequest:
    """Ctrl-C and SIGTERM as a flag, set by the signal handler and acted on at safe points;
    ``wake`` (if set) is called too, e.g. to wake an event loop."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.wake: Callable[[], None] | None = None

    def install(self) -> None:
        """Handle Ctrl-C and SIGTERM from now on (main thread only)."""
        for sig in _HELD:
            signal.signal(sig, self._handle)

    def _handle(self, _signum: int, _frame: object) -> None:
        self._event.set()
        if self.wake is not None:
            self.wake()

    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`Interrupted` once a stop was requested."""
        if self._event.is_set():
            raise Interrupted


@dataclass(frozen=True, slots=True)
class Child:
    name: str
    proc: subprocess.Popen[Any]
    tier: int  # higher tiers are stopped first


class Children:
    def __init__(self, stop: StopRequest | None = None) -> None:
        self._children: list[Child] = []
        self.stop = stop or StopRequest()

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def start(self, name: str, command: Sequence[str], tier: int = 0, **popen: Any) -> subprocess.Popen[Any]:
        """Start ``command`` as the leader of a new session; ``tier`` orders the stop. Raises
        :class:`Interrupted` (the child recorded, so it is stopped too) once a stop was requested.
        Call it from the thread that lives as long as the children (the kernel signals a child
        when the thread that started it ends)."""
        if _LIBC is not None:
            popen.setdefault("preexec_fn", _die_with_parent(os.getpid()))
        proc = subprocess.Popen(command, start_new_session=True, **popen)
        self._children.append(Child(name, proc, tier))
        self.stop.check()
        return proc

    def __len__(self) -> int:
        return len(self._children)

    def stop_all(self, timeout: float = 15.0) -> None:
        """Stop every child's process group, the highest tier first (services before the server
        they send to, so their last spans land), each tier at once, within ``timeout`` per tier."""
        held = _ignore_signals()
        try:
            for tier in sorted({c.tier for c in self._children}, reverse=True):
                _stop_groups([c.proc for c in self._children if c.tier == tier], timeout)
            self._children.clear()
        finally:
            for sig, handler in held.items():
                signal.signal(sig, handler)


def _die_with_parent(parent: int) -> Callable[[], None]:
    """For the child between fork and exec: SIGTERM once `parent` dies, however it dies (and
    exit at once if it died before that was set)."""

    def arrange() -> None:
        # The parent's Python handler of SIGTERM would swallow one arriving before the exec.
        _SIGNAL(signal.SIGTERM, None)  # SIG_DFL
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os._exit(1)

    return arrange


def _ignore_signals() -> dict[int, Any]:
    """Ignore Ctrl-C and SIGTERM (from the main thread only, where Python allows it); returns the
    handlers to put back."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, signal.SIG_IGN) for sig in _HELD}


def _stop_groups(procs: list[subprocess.Popen[Any]], timeout: float) -> None:
    for proc in procs:
        _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        _signal_group(proc.pid, signal.SIGKILL)  # whatever the leader left behind


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the whole group is gone already
        os.killpg(pgid, sig)


def wait_for_line(proc: subprocess.Popen[Any], marker: str, timeout: float, what: str, stop: StopRequest) -> list[str]:
    """Read `proc`'s stdout until a line contains `marker`; returns the lines read so far. Later
    output keeps being drained in the background and echoed (warnings and errors of the child)."""
    assert proc.stdout is not None
    stream: IO[Any] = proc.stdout
    lines: list[str] = []
    found = threading.Event()

    def pump() -> None:
        for raw in stream:
            line = raw.decode() if isinstance(raw, bytes) else raw
            if found.is_set():
                print(line, end="", flush=True)
                continue
            lines.append(line.rstrip("\n"))
            if marker in line:
                found.set()

    threading.Thread(target=pump, daemon=True).start()
    _wait(found.is_set, proc, timeout, what, stop)
    return lines


def wait_for_http(url: str, proc: subprocess.Popen[Any], timeout: float, what: str, stop: StopRequest) -> None:
    """Poll `url` until it answers 200, failing fast when `proc` exits (a readiness check)."""

    def answers() -> bool:
        try:
            return httpx.get(url, timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    _wait(answers, proc, timeout, what, stop)


def _wait(ready: Callable[[], bool], proc: subprocess.Popen[Any], timeout: float, what: str, stop: StopRequest) -> None:
    """Return once ``ready()``; raise :class:`ChildFailed` when ``proc`` exits first or ``timeout``
    passes, :class:`Interrupted` when a stop is requested."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stop.check()
        if ready():
            return
        if (code := proc.poll()) is not None:
            raise ChildFailed(f"{what} exited with code {code} before it was ready (its own message is above)")
        time.sleep(0.1)
    raise ChildFailed(f"{what} was not ready within {timeout:g} s")
