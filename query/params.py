"""Parsing of search parameters into a `TraceQuery`; every failure is a `BadRequest` that
names the parameter and shows the accepted form."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tracehouse.query.errors import BadRequest
from tracehouse.storage import AttributeFilter, RedQuery, TraceQuery

MAX_LIMIT = 1000
DEFAULT_LOOKBACK_NS = 3600 * 10**9
_UNITS = {
    "ns": 1, "us": 10**3, "\u00b5s": 10**3, "\u03bcs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
    "h": 3600 * 10**9,
}  # fmt: skip
#: One component of a Go duration (`time.ParseDuration`, what Jaeger and jaeger-ui write): a
#: decimal number and its unit; a duration is one or more of them (1m30s), or a bare 0.
_COMPONENT = re.compile("([0-9]*(?:\\.[0-9]*)?)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_DIGITS = re.compile(r"^[0-9]{1,20}$")
#: Times the store can represent and bind (UInt32 seconds, DateTime64(9)): 1970 up to 2105.
LATEST_NS = 4_000_000_000 * 10**9
MAX_DURATION_NS = 366 * 86400 * 10**9
#: Attribute conditions one search may carry, in every API that searches (native `attr`, Zipkin's
#: `annotationQuery`, Jaeger's `tags`/`tag` and v3 `query.attributes`, the dashboard's form through
#: the native API), and the characters of their keys and values together. Each condition is an
#: expression the engine plans and evaluates on every span of the range: 600 took 6 s of CPU, 1,000
#: the embedded engine's whole memory. A person or a UI writes a handful.
MAX_FILTERS = 32
MAX_FILTER_CHARS = 8192


def parse_duration(name: str, text: str) -> int:
    """A Go duration — '250ms', '1.5s', '100us', '2m', '1m30s', '0' — -> nanoseconds."""
    value = text.strip().removeprefix("+")
    invalid = BadRequest(f"{name}: {text[:40]!r} is not a duration; write e.g. 250ms, 1.5s, 100us, 1m30s")
    if value.startswith("-"):
        raise BadRequest(f"{name}: {text[:40]!r} is negative")
    if value == "0":
        return 0
    if not value or len(value) > 64:
        raise invalid
    total, position = Decimal(0), 0
    while position < len(value):
        component = _COMPONENT.match(value, position)
        if component is None or component[1] in ("", "."):
            raise invalid
        total += Decimal(component[1]) * _UNITS[component[2]]
        position = component.end()
    if total > MAX_DURATION_NS:
        raise BadRequest(f"{name}: {text[:40]!r} is longer than a year")
    return int(total)


def parse_time(name: str, text: str) -> int:
    """Epoch microseconds (as Jaeger) or an ISO 8601 time (UTC when no offset) -> ns."""
    value = text.strip()
    if _DIGITS.match(value):
        ns = int(value) * 1000
    else:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise BadRequest(
                f"{name}: {text[:40]!r} is not a time; give epoch microseconds or ISO 8601 (2026-11-25T17:00:00Z)"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        ns = int(moment.timestamp() * 10**6) * 1000
    if not 0 <= ns <= LATEST_NS:
        raise BadRequest(f"{name}: {text[:40]!r} is outside 1970-01-01 .. 2096-10-02")
    return ns


def parse_attribute(text: str) -> AttributeFilter:
    """'key=value', 'key!=value', 'key=~regex', 'key' (present), '!key' (absent)."""
    if "=" not in text:
        absent = text.startswith("!")
        key = text[1:] if absent else text
        return AttributeFilter(_key(key, text), "absent" if absent else "exists")
    key, _, value = text.partition("=")
    if key.endswith("!"):
        return AttributeFilter(_key(key[:-1], text), "!=", value)
    if value.startswith("~"):
        return AttributeFilter(_key(key, text), "=~", value[1:])
    return AttributeFilter(_key(key, text), "=", value)


def checked_filters(name: str, filters: Sequence[AttributeFilter]) -> tuple[AttributeFilter, ...]:
    """`filters` as a tuple, or `BadRequest` naming `name` when there are more than `MAX_FILTERS`
    of them or their keys and values total more than `MAX_FILTER_CHARS` characters."""
    if len(filters) > MAX_FILTERS:
        raise BadRequest(f"{name}: at most {MAX_FILTERS} attribute conditions per search (got {len(filters)})")
    chars = sum(len(f.key) + len(f.value) for f in filters)
    if chars > MAX_FILTER_CHARS:
        raise BadRequest(
            f"{name}: the attribute conditions total {chars} characters; at most {MAX_FILTER_CHARS} per search"
        )
    return tuple(filters)


def json_object(name: str, text: str, example: str) -> dict[str, Any]:
    """`text` as a JSON object, or `BadRequest` naming `name` with `example` (also for JSON nested
    deeper than the parser goes: that is a `RecursionError`, not a `ValueError`)."""
    try:
        found = json.loads(text)
    except (ValueError, RecursionError):
        found = None
    if not isinstance(found, dict):
        raise BadRequest(f"{name}: must be a JSON object, e.g. {example}")
    return found


def _key(key: str, text: str) -> str:
    if not key.strip():
        raise BadRequest(
            f"attr: {text[:80]!r} names no attribute; write key=value, key!=value, key=~regex, key or !key"
        )
    return key


def time_range(start: str | None, end: str | None) -> tuple[int, int]:
    """[start, end) in ns from the API's parameters; default the last hour."""
    end_ns = parse_time("end", end) if end else time.time_ns()
    start_ns = parse_time("start", start) if start else max(0, end_ns - DEFAULT_LOOKBACK_NS)
    if start_ns >= end_ns:
        raise BadRequest("start: must be before end")
    return start_ns, end_ns


def check_durations(low_ns: int | None, high_ns: int | None) -> None:
    """A search's duration bounds, as Zipkin and Jaeger check them: 400 when min > max."""
    if low_ns is not None and high_ns is not None and low_ns > high_ns:
        raise BadRequest("minDuration: must not exceed maxDuration")


def duration_bounds(min_duration: str | None, max_duration: str | None) -> tuple[int | None, int | None]:
    """`minDuration` and `maxDuration` as written (Go durations) -> ns, checked (`check_durations`)."""
    low = parse_duration("minDuration", min_duration) if min_duration else None
    high = parse_duration("maxDuration", max_duration) if max_duration else None
    check_durations(low, high)
    return low, high


def trace_query(
    *,
    service: str | None,
    operation: str | None,
    attributes: list[str],
    min_duration: str | None,
    max_duration: str | None,
    start: str | None,
    end: str | None,
    errors_only: bool,
    limit: int,
    parent_service: str | None = None,
    peer: str | None = None,
) -> TraceQuery:
    start_ns, end_ns = time_range(start, end)
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit: must be between 1 and {MAX_LIMIT} (got {limit})")
    low, high = duration_bounds(min_duration, max_duration)
    return TraceQuery(
        start_ns=start_ns,
        end_ns=end_ns,
        service=service or None,
        operation=operation or None,
        attributes=checked_filters("attr", [parse_attribute(a) for a in attributes]),
        min_duration_ns=low,
        max_duration_ns=high,
        errors_only=errors_only,
        limit=limit,
        parent_service=parent_service or None,
        peer=peer or None,
    )


MAX_POINTS = 2000


def red_query(
    service: str, operation: str | None, span_kind: str, start: str | None, end: str | None, step: str
) -> RedQuery:
    start_ns, end_ns = time_range(start, end)
    if start is None and end is None:  # whole minutes, so the per-minute rollup can answer
        end_ns = -(-end_ns // 60_000_000_000) * 60_000_000_000
        start_ns = end_ns - DEFAULT_LOOKBACK_NS
    step_s = parse_duration("step", step) // 10**9
    if step_s < 1:
        raise BadRequest("step: must be at least 1s")
    if (end_ns - start_ns) // (step_s * 10**9) > MAX_POINTS:
        raise BadRequest(f"step: {step} gives more than {MAX_POINTS} points over this range; take a longer step")
    kinds = {"server": ("Server", "Consumer"), "all": ()}.get(span_kind.lower())
    if kinds is None:
        raise BadRequest(f"spanKind: {span_kind[:40]!r} is not one of server, all")
    return RedQuery(service, start_ns, end_ns, step_s, operation or None, kinds)
