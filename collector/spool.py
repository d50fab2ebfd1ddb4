"""The on-disk spool: batches the store refused, kept in order until they are written.

A batch in the spool is acknowledged data, so `append` returns only once the batch is on
disk (temp file, fsync, rename, fsync of the directory). Replays reuse the batch token, so
a batch written twice (a crash between insert and removal) is stored once. Bounded in bytes.

The spool also holds the write-ahead log (`ahead/`): a batch is logged (durably, the same way)
before its senders are answered and its insert starts, and forgotten once the store has it. A
logged batch the store refuses is adopted into the spool by a rename; one still logged at the
next start (the process died before its insert ended) is adopted then, and its token makes
the replay a no-op if the insert had in fact completed.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, fields
from pathlib import Path

from tracehouse.storage import OtlpPayload, SpanBatch

log = logging.getLogger(__name__)

_SUFFIXES = (".batch", ".otlp")  # SpanBatch as JSON; OtlpPayload as a header line + the raw bytes
_OTLP_MAGIC = b"TRACEHOUSE-OTLP-1"
_COLUMN_NAMES = tuple(f.name for f in fields(SpanBatch) if f.name != "token")


class SpoolFull(Exception):
    """Appending would pass the spool's byte bound."""


@dataclass(frozen=True, slots=True)
class Spooled:
    path: Path
    batch: SpanBatch | OtlpPayload


class Spool:
    """Thread-safe; `append` and `remove` may run in worker threads."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.ahead = directory / "ahead"
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # acknowledged spans: the owner's alone
        self.ahead.mkdir(mode=0o700, exist_ok=True)
        self._lock = threading.Lock()
        for stale in [*directory.glob("*.tmp"), *self.ahead.glob("*.tmp")]:
            stale.unlink()  # never renamed: never acknowledged
        files = self._files()
        self._bytes = sum(f.stat().st_size for f in files)
        # Past every numbered file, set-aside and corrupt ones too: numbering from the last batch
        # alone overwrote the .rejected files of an earlier run (the only copy of their spans).
        self._next = max((int(p.stem) for p in directory.iterdir() if p.stem.isdigit()), default=0) + 1
        _tell_set_aside(directory)
        self._next_logged = 1
        self._logged: dict[Path, int] = {}  # logged, not yet forgotten or adopted: bytes
        left = sorted(p for p in self.ahead.iterdir() if p.suffix in _SUFFIXES)
        for logged in left:
            self.adopt(logged)
        if left:
            log.warning("%d batches of the write-ahead log were not known to be stored; spooled for replay", len(left))

    def __len__(self) -> int:
        return len(self._files())

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def logged(self) -> int:
        """Batches in the write-ahead log (neither forgotten nor adopted yet)."""
        return len(self._logged)

    def append(self, batch: SpanBatch | OtlpPayload) -> None:
        """Durably store `batch` after every batch already spooled, or raise `SpoolFull`."""
        data = encode(batch)
        with self._lock:
            self._make_room(len(data))
            path = self.directory / f"{self._next:012d}{_suffix(batch)}"
            _write_durably(path, data)  # under the lock: files appear in sequence order
            self._next += 1
            self._bytes += len(data)

    def log(self, batch: SpanBatch | OtlpPayload) -> Path:
        """Durably write `batch` to the write-ahead log; its path, for `forget` or `adopt`.
        Logged batches count against the bound (each may end up spooled): `SpoolFull`."""
        data = encode(batch)
        with self._lock:
            self._make_room(len(data))
            path = self.ahead / f"{self._next_logged:012d}{_suffix(batch)}"
            self._next_logged += 1
            self._logged[path] = len(data)
        try:
            _write_durably(path, data)
        except OSError:
            with self._lock:
                del self._logged[path]
            raise
        return path

    def forget(self, logged: Path) -> None:
        """Drop a logged batch the store has written."""
        logged.unlink()
        with self._lock:
            self._logged.pop(logged, None)

    def adopt(self, logged: Path) -> None:
        """Move a logged batch into the spool, after every batch spooled so far."""
        size = logged.stat().st_size
        with self._lock:
            path = self.directory / f"{self._next:012d}{logged.suffix}"
            logged.rename(path)
            self._next += 1
            self._bytes += size
            self._logged.pop(logged, None)
        _fsync_directory(self.directory)

    def oldest(self) -> Spooled | None:
        """The first spooled batch, or None when the spool is empty. A file that cannot be
        read is moved aside (`.corrupt`) and logged, never silently dropped."""
        for path in self._files():
            try:
                return Spooled(path, decode(path.read_bytes(), path.suffix))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error("spool file %s is unreadable (%s); moved aside as .corrupt", path, exc)
                self._forget(path, path.with_suffix(".corrupt"))
        return None

    def remove(self, spooled: Spooled) -> None:
        self._forget(spooled.path, None)

    def set_aside(self, batch: SpanBatch | OtlpPayload) -> None:
        """Keep a batch the store refuses as data out of the way (`.rejected`, never replayed,
        not counted in the bound), for a look."""
        with self._lock:
            path = self.directory / f"{self._next:012d}.rejected"
            self._next += 1
        _write_durably(path, encode(batch))

    def _make_room(self, size: int) -> None:
        """`SpoolFull` unless `size` more bytes fit beside the spooled and the logged ones."""
        held = self._bytes + sum(self._logged.values())
        if held + size > self.max_bytes:
            raise SpoolFull(f"spool holds {held} bytes; {size} more would pass {self.max_bytes}")

    def _forget(self, path: Path, rename_to: Path | None) -> None:
        size = path.stat().st_size
        if rename_to is None:
            path.unlink()
        else:
            path.rename(rename_to)
        with self._lock:
            self._bytes -= size

    def _files(self) -> list[Path]:
        return sorted(p for p in self.directory.iterdir() if p.suffix in _SUFFIXES)


def _tell_set_aside(directory: Path) -> None:
    """At start, a warning naming what earlier runs set aside (never replayed, not in the bound)."""
    for suffix, why in ((".rejected", "the store refused them as data"), (".corrupt", "they could not be read")):
        kept = list(directory.glob(f"*{suffix}"))
        if kept:
            size = sum(p.stat().st_size for p in kept)
            log.warning(
                "spool %s holds %d %s files (%d bytes) set aside by earlier runs: %s; they are never replayed "
                "(look, then delete them)",
                directory, len(kept), suffix, size, why,
            )  # fmt: skip


def _suffix(batch: SpanBatch | OtlpPayload) -> str:
    return ".otlp" if isinstance(batch, OtlpPayload) else ".batch"


def encode(batch: SpanBatch | OtlpPayload) -> bytes:
    if isinstance(batch, OtlpPayload):
        return b"%s %s %d\n" % (_OTLP_MAGIC, batch.token.encode("ascii"), batch.spans) + batch.data
    document = {"token": batch.token, "columns": {name: getattr(batch, name) for name in _COLUMN_NAMES}}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")


def decode(data: bytes, suffix: str = ".batch") -> SpanBatch | OtlpPayload:
    if suffix == ".otlp":
        header, _, body = data.partition(b"\n")
        magic, token, spans = header.split(b" ")
        if magic != _OTLP_MAGIC:
            raise ValueError(f"not a spooled OTLP payload (header {header[:40]!r})")
        return OtlpPayload(body, int(spans), token.decode("ascii"))
    document = json.loads(data.decode("utf-8", "surrogatepass"))
    columns = document["columns"]
    return SpanBatch(token=document["token"], **{name: columns[name] for name in _COLUMN_NAMES})


def _write_durably(path: Path, data: bytes) -> None:
    temp = path.with_suffix(".tmp")
    with open(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    temp.rename(path)
    _fsync_directory(path.parent)


def _fsync_directory(path: Path) -> None:
    directory = os.open(path, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
