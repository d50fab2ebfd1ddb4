"""Flush spans when the process is told to stop with SIGTERM (Kubernetes, systemd, Ctrl-C
in a process manager). The default SIGTERM action kills the process without running
atexit hooks, so the batch processor's last spans would be lost.

Installed only over the default action; a program's own SIGTERM handler is left alone
(servers such as uvicorn restore ours when they finish and re-raise the signal to it).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType

from tracehouse.instrumentation._handle import TracingHandle

_log = logging.getLogger("tracehouse.instrumentation")
FLUSH_SECONDS = 5.0


def flush_on_sigterm(handle: TracingHandle) -> bool:
    """Install the handler if SIGTERM still has its default action; True if installed."""
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return False

    def on_sigterm(signum: int, _frame: FrameType | None) -> None:
        # Flush from a helper thread: the main thread may hold a lock the processor needs.
        flusher = threading.Thread(target=_flush_all, args=(handle,), name="tracehouse-flush", daemon=True)
        flusher.start()
        flusher.join(FLUSH_SECONDS)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, on_sigterm)
    return True


def _flush_all(handle: TracingHandle) -> None:
    """Spans, then the breaker stats of the last whole seconds."""
    from tracehouse.instrumentation.breakers.reporter import stop_reporter

    handle.shutdown()
    stop_reporter()
