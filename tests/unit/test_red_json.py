"""A RED step as the API answers it: the rate of a step still running, of one over, of one not
begun; a step without calls."""

from __future__ import annotations

import pytest

from tracehouse.query.views import red_json
from tracehouse.storage import RedPoint

S = 10**9
START = 1_800_000_000 * S  # a whole minute


def point(calls: int) -> RedPoint:
    return RedPoint(calls=calls, errors=1 if calls else 0, p50_ns=5e6, p95_ns=8e6, p99_ns=9e6, start_ns=START)


@pytest.mark.parametrize(
    ("now_ns", "rate"),
    [
        (START + 7 * S, 34 / 7),  # running: over its 7 s gone, not 60
        (START + 60 * S, 34 / 60),  # over
        (START + 3600 * S, 34 / 60),
        (START + S // 10, 34.0),  # 100 ms in: over a second, not a burst of 340/s
        (START - 5 * S, 34 / 60),  # not begun (calls from clocks ahead): over the whole step
    ],
)
def test_the_rate_is_over_the_seconds_of_the_step_gone(now_ns: int, rate: float) -> None:
    assert red_json(point(34), 60, now_ns)["rate"] == pytest.approx(rate)


def test_a_step_without_calls_has_rate_0_and_nothing_else_measured() -> None:
    assert red_json(point(0), 60, START + 7 * S) == {
        "startTimeUnixNano": str(START), "rate": 0.0, "calls": 0, "errors": 0,
        "errorRate": None, "p50Nano": None, "p95Nano": None, "p99Nano": None,
    }  # fmt: skip
    assert red_json(point(4), 60, START + 70 * S)["errorRate"] == 0.25
