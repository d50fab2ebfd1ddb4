"""A killed demo leaves no services behind: its children get SIGTERM from the kernel when it dies,
even by SIGKILL, which no handler of its own can see (demo/processes.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

PARENT = """
import sys, time
from tracehouse.demo.processes import Children
with Children() as children:
    child = children.start("sleeper", [sys.executable, "-c", "import time; time.sleep(300)"])
    print(child.pid, flush=True)
    time.sleep(300)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")  # a zombie has exited, its parent just has not reaped it


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_a_child_stops_when_the_demo_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = 0
    try:
        child = int(parent.stdout.readline())
        assert _alive(child)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)  # polling a pid: nothing to await across processes
        assert not _alive(child), "the child outlived the SIGKILLed process that started it"
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()
        if child and _alive(child):
            os.kill(child, signal.SIGKILL)
