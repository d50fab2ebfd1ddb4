"""The trace waterfall figure: one bar per span, offset from the trace start, coloured by
service. Pure function of the API's trace JSON; no I/O."""

from __future__ import annotations

import plotly.graph_objects as go

from tracehouse.query.client import TraceJson

_PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#bab0ac")
ERROR_COLOUR = "#e15759"
NBSP = "\u00a0"  # Plotly trims ordinary leading spaces from tick labels


def service_colours(services: list[str]) -> dict[str, str]:
    return {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(sorted(services))}


def waterfall(trace: TraceJson) -> go.Figure:
    start = int(trace["startTimeUnixNano"])
    colours = service_colours(trace["services"])
    spans = trace["spans"]
    labels = [f"{NBSP * 3 * s['depth']}{s['serviceName']}: {s['name']}  #{i}" for i, s in enumerate(spans)]
    figure = go.Figure(
        go.Bar(
            y=labels,
            x=[max(s["durationNano"], 1) / 1e6 for s in spans],
            base=[(int(s["startTimeUnixNano"]) - start) / 1e6 for s in spans],
            orientation="h",
            marker={
                "color": [colours[s["serviceName"]] for s in spans],
                "line": {
                    "color": [ERROR_COLOUR if s["status"]["code"] == "Error" else "rgba(0,0,0,0)" for s in spans],
                    "width": 2,
                },
            },
            customdata=[[s["spanId"], s["kind"], s["status"]["code"]] for s in spans],
            hovertemplate="%{y}<br>start +%{base:.3f} ms, %{x:.3f} ms<br>%{customdata[1]} %{customdata[2]}"
            "<extra>%{customdata[0]}</extra>",
        )
    )
    figure.update_layout(
        height=max(240, 28 * len(spans) + 80),
        margin={"l": 10, "r": 10, "t": 30, "b": 30},
        xaxis={"title": "ms since trace start", "rangemode": "tozero"},
        yaxis={"autorange": "reversed", "automargin": True},
        showlegend=False,
    )
    return figure
