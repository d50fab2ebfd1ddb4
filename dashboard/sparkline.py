"""The breaker wall's sparklines: a breaker's cluster request rate over the last two minutes, kept
by the dashboard process between ticks (pages/breakers.py `SeriesCache`) and seeded once from the
stored history, drawn as a small SVG. Pure functions of JSON-able data; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["SPAN_S", "Series", "extend", "seed", "svg"]

#: How far back a sparkline reaches (Hystrix drew the last two minutes).
SPAN_S = 120
#: ``[[epoch second, requests/s], ...]``, oldest first, at most one point per second.
Series = list[list[float]]
_WIDTH, _HEIGHT = 240, 60
_STROKE = "#6f95b8"


def seed(requests_by_second: Iterable[tuple[int, int]], end_s: int, window_s: int) -> Series:
    """The rolling rate the live view would have shown at each second of the last :data:`SPAN_S`:
    at second ``t`` the requests of ``[t - window_s, t)`` over ``window_s`` (as the window API computes
    it), from per-second request counts (absent seconds had none)."""
    counts = dict(requests_by_second)
    first = end_s - SPAN_S
    rolling = sum(counts.get(s, 0) for s in range(first - window_s, first))
    series: Series = []
    for t in range(first, end_s + 1):
        series.append([t, round(rolling / window_s, 3)])
        rolling += counts.get(t, 0) - counts.get(t - window_s, 0)
    return series


def extend(series: Series, t: int, rate: float) -> Series:
    """``series`` with the live rate at second ``t`` (replacing an earlier value of that second),
    trimmed to the last :data:`SPAN_S` seconds."""
    kept = [point for point in series if t - SPAN_S <= point[0] < t]
    return [*kept, [t, rate]]


def svg(series: Series, end_s: int) -> str | None:
    """An inline ``<svg class="sparkline">`` of the polyline over ``[end_s - SPAN_S, end_s]``, scaled
    to its own peak; None with fewer than two points. Whole pixels, and inline rather than an image:
    a 200-tile wall draws 200 of these a second, and an image is decoded anew each time."""
    if len(series) < 2:
        return None
    peak = max(rate for _, rate in series) or 1.0
    points = " ".join(
        f"{(t - end_s + SPAN_S) * _WIDTH / SPAN_S:.0f},{_HEIGHT - 2 - rate / peak * (_HEIGHT - 4):.0f}"
        for t, rate in series
    )
    return (
        f'<svg class="sparkline" viewBox="0 0 {_WIDTH} {_HEIGHT}" preserveAspectRatio="none">'
        f'<polyline fill="none" stroke="{_STROKE}" stroke-width="1.5" vector-effect="non-scaling-stroke" '
        f'points="{points}"/></svg>'
    )
