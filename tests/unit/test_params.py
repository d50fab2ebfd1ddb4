"""Search parameter parsing: durations, times, attribute expressions, and precise 400s."""

from __future__ import annotations

import pytest

from tracehouse.query import BadRequest
from tracehouse.query.params import parse_attribute, parse_duration, parse_time, trace_query
from tracehouse.storage import AttributeFilter


@pytest.mark.parametrize(
    ("text", "ns"),
    [("250ms", 250_000_000), ("1.5s", 1_500_000_000), ("100us", 100_000), ("7µs", 7000), ("2m", 120 * 10**9),
     ("3ns", 3), ("1h", 3600 * 10**9),
     # Go's time.ParseDuration forms, which Jaeger and jaeger-ui write
     ("1m30s", 90 * 10**9), ("1h0m0s", 3600 * 10**9), ("0", 0), (".5s", 500_000_000), ("+2s", 2 * 10**9),
     ("500\u03bcs", 500_000), ("1.5h30m", 2 * 3600 * 10**9)],
)  # fmt: skip
def test_durations(text: str, ns: int) -> None:
    assert parse_duration("minDuration", text) == ns


@pytest.mark.parametrize("text", ["250", "ms", "1,5s", "1 day", "", ".s", "1s2", "1.2.3s", "1sm"])
def test_bad_durations_name_the_parameter(text: str) -> None:
    with pytest.raises(BadRequest, match=r"^minDuration: .* is not a duration; write e.g. 250ms"):
        parse_duration("minDuration", text)


def test_a_negative_duration_is_refused_as_such() -> None:
    with pytest.raises(BadRequest, match=r"^minDuration: '-1s' is negative$"):
        parse_duration("minDuration", "-1s")


def test_times() -> None:
    assert parse_time("start", "1764086400000000") == 1764086400000000 * 1000
    assert parse_time("start", "2025-11-25T16:00:00Z") == 1764086400 * 10**9
    assert parse_time("start", "2025-11-25T17:00:00+01:00") == 1764086400 * 10**9
    assert parse_time("start", "2025-11-25T16:00:00") == 1764086400 * 10**9  # naive means UTC
    with pytest.raises(BadRequest, match=r"^end: 'yesterday' is not a time"):
        parse_time("end", "yesterday")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http.method=GET", AttributeFilter("http.method", "=", "GET")),
        ("http.status_code!=200", AttributeFilter("http.status_code", "!=", "200")),
        ("db.statement=~^SELECT", AttributeFilter("db.statement", "=~", "^SELECT")),
        ("error", AttributeFilter("error", "exists")),
        ("!error", AttributeFilter("error", "absent")),
        ("k=a=b", AttributeFilter("k", "=", "a=b")),
        ("empty=", AttributeFilter("empty", "=", "")),
    ],
)
def test_attribute_expressions(text: str, expected: AttributeFilter) -> None:
    assert parse_attribute(text) == expected


@pytest.mark.parametrize("text", ["", "!", "=x", "!=x", " =~y"])
def test_attribute_without_a_key(text: str) -> None:
    with pytest.raises(BadRequest, match=r"^attr: .* names no attribute"):
        parse_attribute(text)


def query(**overrides: object) -> object:
    args: dict[str, object] = {
        "service": None, "operation": None, "attributes": [], "min_duration": None, "max_duration": None,
        "start": None, "end": None, "errors_only": False, "limit": 20,
    }  # fmt: skip
    args.update(overrides)
    return trace_query(**args)  # type: ignore[arg-type]


def test_defaults_to_the_last_hour() -> None:
    built = query(end="1764086400000000")
    assert built.end_ns - built.start_ns == 3600 * 10**9  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"limit": 0}, "^limit: must be between 1 and 1000"),
        ({"limit": 5000}, "^limit: must be between 1 and 1000"),
        ({"start": "2025-11-25T17:00:00Z", "end": "2025-11-25T16:00:00Z"}, "^start: must be before end"),
        ({"min_duration": "2s", "max_duration": "1s"}, "^minDuration: must not exceed maxDuration"),
    ],
)
def test_inconsistent_queries_are_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        query(**overrides)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: parse_time("start", "²"), r"^start: '²' is not a time"),
        (lambda: parse_time("end", "99999999999999999999"), r"^end: .* is outside 1970"),
        (lambda: parse_time("end", "2150-01-01T00:00:00Z"), r"^end: .* is outside 1970"),
        (lambda: parse_duration("minDuration", "9" * 400 + "ms"), r"^minDuration: .* is not a duration"),
        (lambda: parse_duration("step", "99999999999h"), r"^step: .* is longer than a year"),
    ],
)
def test_out_of_range_numbers_are_400s(call: object, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        call()  # type: ignore[operator]
