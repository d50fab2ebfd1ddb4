"""The accepted time range of span start times.

A span older than the store's retention would be dropped by the table's TTL right at
insert — after its sender was told it was stored — so it is refused here instead, and
so is one that starts implausibly far in the future (a broken clock).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Spans may start at most `max_age` seconds ago and `max_ahead` seconds from now."""

    max_age: float
    max_ahead: float

    def bounds(self) -> tuple[int, int]:
        """(earliest, latest) accepted start, in ns since the epoch, as of now."""
        now = time.time_ns()
        return now - int(self.max_age * _NS), now + int(self.max_ahead * _NS)

    def reason(self, start_ns: int, bounds: tuple[int, int]) -> str | None:
        """Why a span starting at `start_ns` is refused, or None."""
        if start_ns < bounds[0]:
            return f"starts more than {self.max_age / 86400:g} days ago (outside retention)"
        if start_ns > bounds[1]:
            return f"starts more than {self.max_ahead / 3600:g} hours in the future"
        return None


#: The default: a week of retention, a day of clock skew ahead.
DEFAULT_WINDOW = TimeWindow(max_age=7 * 86400, max_ahead=86400)
