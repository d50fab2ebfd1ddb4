"""The breaker wall's pure parts: Hystrix's colour and size scales, the circuit line, sort orders,
the URL state and the sparkline series (the browser test covers how they render)."""

from __future__ import annotations

from dataclasses import replace
from typing import cast

import pytest

from tracehouse.dashboard import sparkline
from tracehouse.dashboard.breaker_tiles import (
    SORTS,
    breaker_tile,
    circuit_parts,
    health_colour,
    pool_tile,
    radius,
    sort_breakers,
)
from tracehouse.dashboard.history_range import RangeError, history_span, parse_moment, step_for
from tracehouse.dashboard.pages.breakers import WallState
from tracehouse.query.client import BreakerJson, ThreadPoolJson


@pytest.mark.parametrize(
    ("error_percentage", "colour"),
    [(0, "#008000"), (10, "#008000"), (17.5, "#80a600"), (25, "#ffcc00"), (40, "#ff9900"), (45, "#ff4d00"),
     (50, "#ff0000"), (100, "#ff0000")],
)  # fmt: skip
def test_colour_follows_hystrix_scale(error_percentage: float, colour: str) -> None:
    assert health_colour(error_percentage) == colour


def test_radius_is_a_square_root_scale_from_5_to_125_px() -> None:
    assert radius(0) == 5
    assert radius(100) == pytest.approx(5 + 120 * 0.5)
    assert radius(400) == 125
    assert radius(10_000) == 125  # clamped: the tile clips it anyway
    assert radius(-1) == 5


def test_circuit_line() -> None:
    assert circuit_parts({"CLOSED": 3}) == [("Closed", "green")]
    assert circuit_parts({"FORCED_OPEN": 1}) == [("Forced Open", "red")]
    assert circuit_parts({"HALF_OPEN": 2, "OPEN": 0}) == [("Half Open", "#ff9900")]
    assert circuit_parts({"CLOSED": 2, "OPEN": 1}) == [("Open 1", "red"), (" / ", "#333"), ("Closed 2", "green")]
    assert circuit_parts({"SOMETHING_NEW": 1}) == [("Something New", "grey")]
    assert circuit_parts({}) == [("Unknown", "grey")]


def breaker(name: str, error: float, rate: float, p99: float = 0.0, cluster: str = "c") -> BreakerJson:
    rates = {"cluster": rate, "host": rate}
    entry = {"name": name, "cluster": cluster, "errorPercentage": error, "rate": rates, "latency": {"p99": p99}}
    return cast(BreakerJson, entry)


def test_sort_orders() -> None:
    wall = [breaker("b", 0, 50, p99=9), breaker("a", 0, 5, p99=30), breaker("c", 60, 1), breaker("d", 60, 2)]

    def names(sort: str) -> list[str]:
        return [b["name"] for b in sort_breakers(wall, sort)]

    assert names("error-volume") == ["d", "c", "b", "a"]
    assert names("alpha") == ["a", "b", "c", "d"]
    assert names("volume") == ["b", "a", "d", "c"]
    assert names("error") == ["c", "d", "a", "b"]  # ties by name
    assert names("p99") == ["a", "b", "c", "d"]
    assert names("bogus") == names("error-volume")


def test_wall_state_round_trips_through_the_url() -> None:
    assert WallState.parse("") == WallState()
    assert WallState().query() == ""
    state = WallState.parse("?sort=volume&cluster=shop")
    assert state == WallState(cluster="shop", sort="volume")
    assert state.query() == "?cluster=shop&sort=volume"
    opened = WallState().selecting("shop", "payments.charge", "command")
    assert opened.query() == "?breaker=payments.charge&breakerCluster=shop"
    assert WallState.parse(opened.query()).selected_cluster == "shop"
    assert state.selecting("shop", "pool/1", "threadpool").query() == (
        "?cluster=shop&sort=volume&breaker=pool%2F1&kind=threadpool"
    )
    assert opened.closed() == WallState()


def test_unknown_url_values_read_as_defaults() -> None:
    assert WallState.parse("?window=7y&sort=random&kind=x&range=never") == WallState()


def test_sparkline_seed_is_the_rolling_window_rate() -> None:
    end = 1_000_000
    # 10 requests in each of the 5 seconds before `end`, window 10 s
    series = sparkline.seed(((s, 10) for s in range(end - 5, end)), end, 10)
    assert len(series) == sparkline.SPAN_S + 1
    assert series[0] == [end - sparkline.SPAN_S, 0.0]
    assert series[-1] == [end, 5.0]  # 50 requests in [end - 10, end)
    assert series[-3] == [end - 2, 3.0]


def test_sparkline_extend_replaces_a_second_and_trims() -> None:
    series: sparkline.Series = [[100, 1.0], [101, 2.0]]
    assert sparkline.extend(series, 101, 5.0) == [[100, 1.0], [101, 5.0]]
    assert sparkline.extend(series, 100 + sparkline.SPAN_S + 1, 7.0) == [[101, 2.0], [221, 7.0]]


def test_sparkline_svg() -> None:
    assert sparkline.svg([[1, 0.0]], 1) is None
    line = sparkline.svg([[0, 0.0], [120, 4.0]], 120)
    assert line is not None
    assert line.startswith('<svg class="sparkline"')
    assert 'points="0,58 240,2"' in line  # oldest left at the bottom, peak right at the top


def test_every_latency_sort_puts_the_slowest_first() -> None:
    keys = {"mean": "mean", "median": "p50", "p90": "p90", "p99": "p99", "p99.5": "p99.5"}

    def slowest_in(sort: str) -> BreakerJson:
        entry = breaker(sort, 0, 1)
        entry["latency"] = {key: 9.0 if key == keys[sort] else 1.0 for key in keys.values()}
        return entry

    wall = [slowest_in(sort) for sort in keys]
    for sort in keys:
        assert sort_breakers(wall, sort)[0]["name"] == sort
    assert list(SORTS) == ["error-volume", "alpha", "volume", "error", *keys]  # Hystrix's orders, its default first


def test_a_custom_history_range_lives_in_the_url() -> None:
    opened = WallState().selecting("shop", "payments.charge", "command")
    custom = replace(opened, since="2026-11-25 17:00", until="2026-11-25 18:00", range="6h")
    assert custom.query() == (
        "?breaker=payments.charge&breakerCluster=shop&from=2026-11-25+17%3A00&to=2026-11-25+18%3A00"
    )  # the custom range replaces the preset
    assert WallState.parse(custom.query()) == replace(custom, range="1h")
    assert WallState.parse("?to=2026-11-25") == WallState()  # an end alone means nothing
    assert custom.closed() == WallState()


def test_history_spans_and_steps() -> None:
    now = 1_764_090_000
    assert history_span("6h", None, None, now) == (now - 6 * 3600, now, "1m")
    assert history_span("7d", None, None, now) == (now - 7 * 86400, now, "30m")
    start = parse_moment("from", "2025-11-25 16:00")
    assert start == parse_moment("from", "2025-11-25T17:00:00+01:00") == 1_764_086_400
    assert history_span("1h", "2025-11-25 16:00", None, now) == (start, now, "15s")  # 3,600 s: 240 points
    assert history_span("1h", "2025-11-25 16:00", "2025-11-25 16:05", now) == (start, start + 300, "1s")
    assert step_for(30 * 86400) == 3 * 3600
    with pytest.raises(RangeError, match="from: 'yesterday' is not a time; write 2026-11-25 17:00"):
        history_span("1h", "yesterday", None, now)
    with pytest.raises(RangeError, match="from: must be before to"):
        history_span("1h", "2025-11-25 16:00", "2025-11-25 15:00", now)


def test_tile_html_escapes_what_reporters_send() -> None:
    hostile = '<img src=x onerror=alert(1)>"'
    entry = {
        **breaker(hostile, 0, 1, cluster=hostile), "group": "g", "hosts": 1, "counts": {}, "open": False,
        "states": {hostile: 1}, "latency": {},
    }  # fmt: skip
    tile = breaker_tile(cast(BreakerJson, entry), [[0, 1.0], [1, 2.0]], 1, f"/breakers?breaker={hostile}", True)
    assert "<img" not in tile
    assert "&lt;img src=x onerror=alert(1)&gt;&quot;" in tile  # in attributes
    assert '&lt;img src=x onerror=alert(1)&gt;"' in tile  # in text
    pool = {"cluster": hostile, "name": hostile, "hosts": 1, "executed": 1, "rejected": 0,
            "rate": {"cluster": 1.0, "host": 1.0}, "maxActive": 1, "gauges": {}}  # fmt: skip
    assert "<img" not in pool_tile(cast(ThreadPoolJson, pool), "/breakers", True)
