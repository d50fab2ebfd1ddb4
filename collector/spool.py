"""The on-disk spool: batches the store refused, kept in order until they are written.

A batch in the spool is acknowledged data, so `append` returns only once the batch is on
disk (temp file, fsync, rename, fsync of the directory). Replays reuse the batch token, so
a batch written twice (a crash between insert and removal) is stored once. Bounded in bytes.
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
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        for stale in directory.glob("*.tmp"):
            stale.unlink()  # never renamed: never acknowledged
        files = self._files()
        self._bytes = sum(f.stat().st_size for f in files)
        self._next = int(files[-1].stem) + 1 if files else 1

    def __len__(self) -> int:
        return len(self._files())

    @property
    def bytes(self) -> int:
        return self._bytes

    def append(self, batch: SpanBatch | OtlpPayload) -> None:
        """Durably store `batch` after every batch already spooled, or raise `SpoolFull`."""
        data = encode(batch)
        suffix = ".otlp" if isinstance(batch, OtlpPayload) else ".batch"
        with self._lock:
            if self._bytes + len(data) > self.max_bytes:
                raise SpoolFull(f"spool holds {self._bytes} bytes; {len(data)} more would pass {self.max_bytes}")
            path = self.directory / f"{self._next:012d}{suffix}"
            _write_durably(path, data)  # under the lock: files appear in sequence order
            self._next += 1
            self._bytes += len(data)

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

    def reject(self, spooled: Spooled) -> None:
        """Move a batch the store refuses as data out of the way (`.rejected`), kept for a look."""
        self._forget(spooled.path, spooled.path.with_suffix(".rejected"))

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
    with open(temp, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    temp.rename(path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
