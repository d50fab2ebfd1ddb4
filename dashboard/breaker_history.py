"""One breaker's stored history as a Plotly figure: request rate, error % (with the steps when a
circuit was open on some host) and median / 99th percentile latency, on a shared time axis.
Pure function of the history API's JSON; no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tracehouse.query.client import BreakerHistoryJson, BreakerPointJson

__all__ = ["history_figure"]

_RATE, _ERROR, _P50, _P99 = "#4e79a7", "#e15759", "#59a14f", "#f28e2b"


def history_figure(history: BreakerHistoryJson, start_s: int, end_s: int) -> go.Figure:
    """Every step of ``[start_s, end_s)``: a step without samples had no calls (rate 0), and has no
    error % or latency (a gap, not a zero)."""
    step = max(1, history["stepSeconds"])
    by_time = {p["time"] // 1_000_000: p for p in history["points"]}
    seconds = range(start_s - start_s % step, end_s, step)
    times = [datetime.fromtimestamp(t, UTC) for t in seconds]
    points: list[BreakerPointJson | None] = [by_time.get(t) for t in seconds]
    if history["kind"] == "threadpool":
        return _pool_figure(times, points, step)
    figure = make_subplots(
        rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06,
        subplot_titles=("requests/s", "error %", "latency (ms)"),
    )  # fmt: skip
    figure.add_trace(_line(times, [p["rate"] if p else 0.0 for p in points], "rate", _RATE), row=1, col=1)
    errors = [_if_calls(p, p["errorPercentage"]) if p else None for p in points]
    figure.add_trace(_line(times, errors, "error %", _ERROR), row=2, col=1)
    figure.add_trace(_open_markers(times, points), row=2, col=1)
    for key, name, colour in (("p50", "median", _P50), ("p99", "99th", _P99)):
        values = [_if_calls(p, p["latency"].get(key, 0.0)) if p else None for p in points]
        figure.add_trace(_line(times, values, name, colour), row=3, col=1)
    return _laid_out(figure, 560)


def _pool_figure(times: list[datetime], points: list[BreakerPointJson | None], step: int) -> go.Figure:
    """A thread pool's history: tasks run per second, and the share of submissions it rejected."""
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                           subplot_titles=("executions/s", "rejected %"))  # fmt: skip
    executed = [p["counts"].get("success", 0) / step if p else 0.0 for p in points]
    figure.add_trace(_line(times, executed, "executions/s", _RATE), row=1, col=1)
    rejected = [_if_calls(p, p["errorPercentage"]) if p else None for p in points]
    figure.add_trace(_line(times, rejected, "rejected %", _ERROR), row=2, col=1)
    return _laid_out(figure, 400)


def _laid_out(figure: go.Figure, height: int) -> go.Figure:
    figure.update_layout(
        height=height,
        margin={"l": 50, "r": 10, "t": 30, "b": 30},
        hovermode="x unified",
        legend={"orientation": "h", "y": -0.08},
    )
    figure.update_yaxes(rangemode="tozero")
    return figure


def _if_calls(point: BreakerPointJson, value: float) -> float | None:
    return value if point["requests"] else None


def _open_markers(times: list[datetime], points: list[BreakerPointJson | None]) -> go.Scatter:
    """A cross on the error line at each step when the circuit was open on some host."""
    opened = [(t, p) for t, p in zip(times, points, strict=True) if p and p["openHosts"]]
    return go.Scatter(
        x=[t for t, _ in opened],
        y=[p["errorPercentage"] for _, p in opened],
        customdata=[p["openHosts"] for _, p in opened],
        mode="markers",
        name="circuit open",
        marker={"color": _ERROR, "symbol": "x", "size": 8},
        hovertemplate="open on %{customdata} host(s)<extra></extra>",
    )


def _line(times: list[datetime], values: Sequence[float | None], name: str, colour: str) -> go.Scatter:
    # markers too: a breaker seen in one step only would otherwise draw nothing
    return go.Scatter(
        x=times, y=values, mode="lines+markers", name=name, line={"color": colour, "width": 1.5},
        marker={"color": colour, "size": 4},
    )  # fmt: skip
