"""The span of time a breaker's history shows: a preset ending now, or any range typed as UTC
times (what Hystrix never had), and the step that draws it in at most `MAX_POINTS` points.
Pure functions; a range that cannot be read is a `RangeError` whose message says how to write it.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["MAX_POINTS", "RANGES", "RangeError", "history_span", "parse_moment", "step_for"]

#: Preset → (seconds ending now, step): about 200–360 points each.
RANGES = {
    "15m": (900, "5s"),
    "1h": (3600, "15s"),
    "6h": (6 * 3600, "1m"),
    "24h": (86400, "5m"),
    "7d": (7 * 86400, "30m"),
}
MAX_POINTS = 360
#: Steps a custom range may get, shortest first (the store keeps one row per second).
_STEPS = (1, 5, 15, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 86400)


class RangeError(ValueError):
    """A custom range that cannot be read; the message names the field and the form to use."""


def parse_moment(name: str, text: str) -> int:
    """'2026-11-25 17:00', '2026-11-25T17:00:30Z' or with an offset (UTC when none) -> epoch seconds."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise RangeError(f"{name}: {text[:40]!r} is not a time; write 2026-11-25 17:00 (UTC)") from None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


def step_for(seconds: int) -> int:
    """The shortest step that shows `seconds` in at most `MAX_POINTS` points."""
    return next((step for step in _STEPS if seconds / step <= MAX_POINTS), _STEPS[-1])


def history_span(preset: str, since: str | None, until: str | None, now_s: int) -> tuple[int, int, str]:
    """(start, end) in epoch seconds and the API's step for a preset or a custom range; a custom
    range without an end ends now."""
    if not since:
        seconds, step = RANGES.get(preset, RANGES["1h"])
        return now_s - seconds, now_s, step
    start = parse_moment("from", since)
    end = parse_moment("to", until) if until else now_s
    if start >= end:
        raise RangeError("from: must be before to")
    return start, end, f"{step_for(end - start)}s"
