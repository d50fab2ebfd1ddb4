"""Colours shared by the dashboard's pages: one per service (stable for a given set of
services: assigned in name order), and the colour that marks errors."""

from __future__ import annotations

__all__ = ["ERROR_COLOUR", "service_colours"]

# Tableau 10 without its red (the error colour), then Tableau 20's lighter shades.
_PALETTE = (
    "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#bab0ac",
    "#a0cbe8", "#ffbe7d", "#8cd17d", "#b6992d", "#499894", "#86bcb6", "#d37295", "#d4a6c8", "#79706e",
)  # fmt: skip
ERROR_COLOUR = "#e15759"


def service_colours(services: list[str]) -> dict[str, str]:
    return {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(sorted(services))}
