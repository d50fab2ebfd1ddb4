"""The trace search form's pure parts: reading a half-typed attribute expression, what is offered
for it, the chosen suggestion written back, the form's values written as the page's URL, and the
results table written as HTML."""

from __future__ import annotations

import json
from typing import Any

import pytest
from dash.exceptions import PreventUpdate
from plotly.utils import PlotlyJSONEncoder

from tracehouse.dashboard.attr_suggest import Typed, key_suggestions, parse_typed, value_suggestions
from tracehouse.dashboard.pages.traces import completed, results_html, search_fields, suggestion_buttons, time_params
from tracehouse.query.client import SummaryJson


def test_a_typed_line_reads_as_the_api_reads_it() -> None:
    assert parse_typed("http.st") == Typed("http.st")
    assert parse_typed("!http") == Typed("http", negated=True)
    assert parse_typed("http.status=2") == Typed("http.status", "=", "2")
    assert parse_typed("http.status!=5") == Typed("http.status", "!=", "5")
    assert parse_typed("http.route=~/api") == Typed("http.route", "=~", "/api")
    assert parse_typed("q=a=b") == Typed("q", "=", "a=b")


def test_keys_prefix_matches_first_then_by_frequency() -> None:
    keys = ["db.system", "http.status", "net.http.peer", "http.route"]
    assert key_suggestions(Typed("http"), keys) == ["http.status=", "http.route=", "net.http.peer="]
    assert key_suggestions(Typed("HTTP.R"), keys) == ["http.route="]
    assert key_suggestions(Typed("http", negated=True), keys)[0] == "!http.status"
    assert key_suggestions(Typed("nothing"), keys) == []
    assert len(key_suggestions(Typed("k"), [f"k{i}" for i in range(50)])) == 10


def test_values_become_whole_expressions() -> None:
    assert value_suggestions(Typed("card", "=", "v"), ["visa"]) == ["card=visa"]
    assert value_suggestions(Typed("card", "!=", ""), ["visa", "amex"]) == ["card!=visa", "card!=amex"]
    assert value_suggestions(Typed("route", "=~", ""), ["/a.b"]) == ["route=~^/a\\.b$"]


def test_a_chosen_suggestion_replaces_the_last_line() -> None:
    assert completed("card", "card.brand=") == "card.brand="
    assert completed("a=1\ncard.brand=v", "card.brand=visa") == "a=1\ncard.brand=visa\n"
    assert completed("", "!http.status") == "!http.status\n"


def test_the_form_writes_the_url() -> None:
    values = ["orders", None, "front", "", "250ms", "", "", "", "6h", "a=1\n\n !b \n", ["errors only"], 50]
    assert search_fields(*values) == [
        ("service", "orders"), ("parentService", "front"), ("minDuration", "250ms"), ("lookback", "6h"),
        ("attr", "a=1"), ("attr", "!b"), ("error", "true"), ("limit", "50"),
    ]  # fmt: skip
    custom = [None, None, None, None, None, None, "2026-11-25 17:00", "", "1h", "", [], None]
    assert search_fields(*custom) == [("start", "2026-11-25 17:00")]  # a custom range replaces the preset


def test_a_custom_range_goes_to_the_api_as_given() -> None:
    assert time_params({"start": ["2026-11-25 17:00"], "lookback": ["1h"]}) == {"start": "2026-11-25 17:00"}
    assert set(time_params({"lookback": ["6h"]})) == {"start"}


def _as_sent_back(buttons: list[Any]) -> list[dict[str, Any]]:
    """Components as the browser sends them back to a callback's State: their JSON."""
    return list(json.loads(json.dumps(buttons, cls=PlotlyJSONEncoder)))


def test_suggestions_on_screen_are_not_redrawn_when_offered_again() -> None:
    """A click on a suggestion while the answer for the next keystroke arrives must not be lost
    with a redraw of the same buttons; other suggestions are drawn."""
    shown = _as_sent_back(suggestion_buttons(["http.status=", "http.route="], None))
    with pytest.raises(PreventUpdate):
        suggestion_buttons(["http.status=", "http.route="], shown)
    assert [b.children for b in suggestion_buttons(["http.route="], shown)] == ["http.route="]
    assert [b.children for b in suggestion_buttons(["http.route=", "http.status="], shown)] == [
        "http.route=", "http.status="
    ]  # fmt: skip
    assert suggestion_buttons([], shown) == []
    with pytest.raises(PreventUpdate):
        suggestion_buttons([], None)  # nothing offered, nothing shown


def test_the_results_are_one_html_table_with_every_text_escaped() -> None:
    summary: SummaryJson = {
        "traceId": "ab12", "rootService": "shop", "rootOperation": "GET /?q=<b>&", "durationNano": 1_500_000,
        "startTimeUnixNano": "1764090000123000000", "spanCount": 3, "errorCount": 1,
        "services": [{"name": "shop", "spans": 2}, {"name": "db<", "spans": 1}],
    }  # fmt: skip
    table = results_html([summary, {**summary, "traceId": "cd34", "errorCount": 0}])
    head = "".join(f"<th>{h}</th>" for h in ("start", "trace", "duration", "spans", "errors", "services"))
    style = "width: 100%; text-align: left; border-spacing: 1em 0.3em"
    assert table.startswith(f'<table id="search-results" style="{style}"><thead><tr>{head}</tr></thead><tbody>')
    assert table.count('<tr class="trace-row">') == 2
    assert (
        '<tr class="trace-row"><td>2025-11-25 17:00:00.123</td>'
        '<td><a class="trace-link" href="/trace/ab12">shop: GET /?q=&lt;b&gt;&amp;</a></td>'
        "<td>1.500 ms</td><td>3 spans</td><td>1</td><td>shop (2), db&lt; (1)</td></tr>"
    ) in table
