"""An incremental ``text/event-stream`` reader: bytes as they come off the socket in, the ``data`` of
each complete event out. A frame split across chunks waits for its end; it never raises on input.

Lines end with LF or CRLF (every Hystrix emitter uses one of them). ``ping:`` lines, comments and the
``event``/``id``/``retry`` fields are read and ignored; a line longer than ``max_line`` is dropped and
counted, so a peer that never sends a newline cannot make the buffer grow without bound.
"""

from __future__ import annotations

__all__ = ["MAX_LINE", "SseParser"]

MAX_LINE = 1 << 20


class SseParser:
    """Feed chunks with :meth:`feed`; read :attr:`keepalives` and :attr:`oversized` as counters."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        #: Events that carried no data (Hystrix's ``ping:`` keep-alives).
        self.keepalives = 0
        #: Lines dropped for being longer than ``max_line``.
        self.oversized = 0
        self._buffer = bytearray()
        self._data: list[str] = []
        self._skipping = False  # inside an oversized line: drop bytes up to its end

    def feed(self, chunk: bytes) -> list[str]:
        """The data of every event that ``chunk`` completes, in order (multi-line data joined by LF)."""
        self._buffer += chunk
        complete: list[str] = []
        start = 0
        while (end := self._buffer.find(b"\n", start)) >= 0:
            line = bytes(self._buffer[start:end])
            start = end + 1
            if self._skipping:
                self._skipping = False
                continue
            self._line(line.removesuffix(b"\r").decode("utf-8", errors="replace"), complete)
        del self._buffer[:start]
        if len(self._buffer) > self.max_line:
            if not self._skipping:
                self.oversized += 1
            self._skipping = True
            self._buffer.clear()
        return complete

    def _line(self, line: str, complete: list[str]) -> None:
        if not line:
            if self._data:
                complete.append("\n".join(self._data))
                self._data = []
            else:
                self.keepalives += 1
            return
        if line.startswith(":"):
            return  # a comment (Turbine 1 sent ": ping")
        name, _, value = line.partition(":")
        if name == "data":
            self._data.append(value.removeprefix(" "))
