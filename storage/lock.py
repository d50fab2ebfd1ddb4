"""One owner per embedded data directory, with an error that says who the owner is.

chDB refuses a second process with a bare `Cannot lock file .../status`; this lock is
taken first so the user learns which directory and which process instead.
"""

from __future__ import annotations

import fcntl
import os
import sys
import threading
import time
from pathlib import Path

from tracehouse.storage.errors import StorageError, StoreLocked

LOCK_NAME = "tracehouse.lock"

_held: dict[Path, tuple[int, int]] = {}  # directory -> (fd, references) held by this process
_guard = threading.Lock()


class DataDirLock:
    """An exclusive, process-wide lock on a data directory (re-entrant within the process)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()
        self._released = False
        with _guard:
            fd, refs = _held.get(self.directory) or (self._acquire(), 0)
            _held[self.directory] = (fd, refs + 1)

    def _acquire(self) -> int:
        try:
            # Spans hold what services put in them (SQL, URLs, user ids): a directory made here is its
            # owner's alone (0700; it was 0755 under the usual umask). One that exists keeps its mode.
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:  # read-only, not a directory, not ours: a bare "[Errno 30] …" before
            reason = "it is a file" if self.directory.is_file() else exc.strerror
            raise StorageError(
                f"data directory {self.directory} cannot be used ({reason}): give --data-dir (or the "
                "chdb:// path of --clickhouse) a directory this user can write"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 4096).decode("utf-8", "replace").strip() or "unknown process"
            os.close(fd)
            raise StoreLocked(
                f"data directory {self.directory} is in use by another Tracehouse process ({owner}). "
                "Stop that process, or give this one another --data-dir (or chdb:// path of --clickhouse)."
            ) from None
        os.ftruncate(fd, 0)
        started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        # Only the program name: the full command line may hold secrets (tokens, DSN passwords).
        program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
        os.write(fd, f"pid {os.getpid()} ({program}), since {started}".encode())
        return fd

    def release(self) -> None:
        with _guard:
            if self._released:
                return
            self._released = True
            fd, refs = _held[self.directory]
            if refs > 1:
                _held[self.directory] = (fd, refs - 1)
                return
            del _held[self.directory]
            os.ftruncate(fd, 0)
            os.close(fd)
