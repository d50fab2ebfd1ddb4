"""The breaker report a service pushes to ``POST /v1/breakers`` each second: documented JSON.

::

    {"service": "orders", "instance": "host:8080", "cluster": "orders",
     "samples": [{"kind": "command", "name": "payments.charge", "group": "payments",
                  "second": 1764100000, "state": "CLOSED",
                  "counts": {"success": 41, "failure": 2, "timeout": 1},
                  "latency": {"buckets": {"170": 12, "171": 30}, "sumMs": 310.5},
                  "concurrency": 0, "maxConcurrency": 3,
                  "gauges": {}, "properties": {"circuitBreakerRequestVolumeThreshold": 20}}]}

A sample is one breaker (``kind`` ``command``) or thread pool (``threadpool``) during one whole
epoch ``second``: its counts are *deltas* for that second, never rolling sums, so any number of
samples add up exactly. ``latency.buckets`` are :mod:`.histogram` bucket indexes. ``state`` is one
of :data:`STATES`; anything else is refused. ``counts`` keys are the outcomes of :data:`COUNT_KEYS`.
Unknown fields are ignored (newer reporters may send more), unknown ``counts`` keys too (dropped,
not stored); known ones of the wrong type are refused with the path of the bad value.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tracehouse.instrumentation.breakers.breaker import State
from tracehouse.instrumentation.breakers.histogram import MAX_BUCKET
from tracehouse.instrumentation.breakers.window import Outcome

__all__ = ["COUNT_KEYS", "KINDS", "MAX_SAMPLES", "STATES", "BreakerReport", "BreakerSample", "ReportError"]

KINDS = ("command", "threadpool")
#: A breaker's states (resilience4j's, Hystrix's forced ones).
STATES = tuple(state.value for state in State)
#: The outcomes a sample counts.
COUNT_KEYS = frozenset(outcome.key for outcome in Outcome)
MAX_SAMPLES = 20_000
_MAX_NAME = 200
_BUCKET_DIGITS = len(str(MAX_BUCKET))
_PropertyValue = str | int | float | bool


class ReportError(ValueError):
    """A report that does not follow the format; the message names the bad value's path."""


@dataclass(frozen=True, slots=True)
class BreakerSample:
    kind: str
    name: str
    group: str
    second: int
    state: str = "CLOSED"
    counts: Mapping[str, int] = field(default_factory=dict)
    latency: Mapping[int, int] = field(default_factory=dict)
    latency_sum_ms: float = 0.0
    concurrency: int = 0
    max_concurrency: int = 0
    gauges: Mapping[str, float] = field(default_factory=dict)
    properties: Mapping[str, _PropertyValue] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "group": self.group,
            "second": self.second,
            "state": self.state,
            "counts": dict(self.counts),
            "latency": {"buckets": {str(k): v for k, v in self.latency.items()}, "sumMs": self.latency_sum_ms},
            "concurrency": self.concurrency,
            "maxConcurrency": self.max_concurrency,
            "gauges": dict(self.gauges),
            "properties": dict(self.properties),
        }


@dataclass(frozen=True, slots=True)
class BreakerReport:
    service: str
    instance: str
    cluster: str
    samples: tuple[BreakerSample, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "instance": self.instance,
            "cluster": self.cluster,
            "samples": [s.to_json() for s in self.samples],
        }

    @classmethod
    def from_json(cls, body: Any, now: float | None = None) -> BreakerReport:
        """Validate a decoded JSON body; raise :class:`ReportError` naming the first bad value."""
        doc = _object(body, "report")
        service = _name(doc.get("service"), "service")
        raw = doc.get("samples")
        if not isinstance(raw, list):
            raise ReportError("samples: must be a list")
        if len(raw) > MAX_SAMPLES:
            raise ReportError(f"samples: at most {MAX_SAMPLES} per report, got {len(raw)}")
        clock = time.time() if now is None else now
        return cls(
            service=service,
            instance=_name(doc.get("instance"), "instance"),
            cluster=_name(doc.get("cluster", service), "cluster"),
            samples=tuple(_sample(item, f"samples[{i}]", clock) for i, item in enumerate(raw)),
        )


def _sample(item: Any, path: str, now: float) -> BreakerSample:
    doc = _object(item, path)
    kind = doc.get("kind", "command")
    if kind not in KINDS:
        raise ReportError(f"{path}.kind: must be one of {', '.join(KINDS)}")
    name = _name(doc.get("name"), f"{path}.name")
    second = _integer(doc.get("second"), f"{path}.second")
    if not 1_000_000_000 <= second <= now + 86_400:
        raise ReportError(f"{path}.second: {second} is not a plausible epoch second")
    latency = _object(doc.get("latency", {}), f"{path}.latency")
    return BreakerSample(
        kind=kind,
        name=name,
        group=_name(doc.get("group", name.split(".", 1)[0]), f"{path}.group"),
        second=second,
        state=_state(doc.get("state", "CLOSED"), f"{path}.state"),
        counts=_counts(doc.get("counts", {}), f"{path}.counts"),
        latency=_buckets(latency.get("buckets", {}), f"{path}.latency.buckets"),
        latency_sum_ms=_number(latency.get("sumMs", 0.0), f"{path}.latency.sumMs"),
        concurrency=_integer(doc.get("concurrency", 0), f"{path}.concurrency"),
        max_concurrency=_integer(doc.get("maxConcurrency", 0), f"{path}.maxConcurrency"),
        gauges={
            k: _number(v, f"{path}.gauges.{k}") for k, v in _object(doc.get("gauges", {}), f"{path}.gauges").items()
        },
        properties=_properties(doc.get("properties", {}), f"{path}.properties"),
    )


def _object(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ReportError(f"{path}: must be a JSON object")
    return value


def _name(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value or len(value) > _MAX_NAME:
        raise ReportError(f"{path}: must be a string of 1–{_MAX_NAME} characters")
    return value


def _integer(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise ReportError(f"{path}: must be a non-negative integer")
    return value


def _number(value: Any, path: str) -> float:
    # A chained comparison, not math.isfinite: that raises OverflowError on a huge JSON integer.
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= sys.float_info.max:
        raise ReportError(f"{path}: must be a non-negative finite number")
    return float(value)


def _state(value: Any, path: str) -> str:
    """One of `STATES`, in any case (`closed` is CLOSED)."""
    state = value.upper() if isinstance(value, str) else value
    if state not in STATES:
        raise ReportError(f"{path}: must be one of {', '.join(STATES)}")
    return str(state)


def _counts(value: Any, path: str) -> dict[str, int]:
    """The known outcomes' counts; other keys (a newer reporter's outcomes) are dropped."""
    return {key: _integer(count, f"{path}.{key}") for key, count in _object(value, path).items() if key in COUNT_KEYS}


def _buckets(value: Any, path: str) -> dict[int, int]:
    buckets: dict[int, int] = {}
    for key, count in _object(value, path).items():
        # ASCII digits only: str.isdigit() also accepts "²" (int() refuses it) and "٣" (int() reads 3).
        if not (key.isascii() and key.isdigit()) or len(key) > _BUCKET_DIGITS or int(key) > MAX_BUCKET:
            raise ReportError(f"{path}: bucket {key[:20]!r} is not an index 0–{MAX_BUCKET}")
        buckets[int(key)] = _integer(count, f"{path}.{key}")
    return buckets


def _properties(value: Any, path: str) -> dict[str, _PropertyValue]:
    props: dict[str, _PropertyValue] = {}
    for key, item in _object(value, path).items():
        if (
            not isinstance(item, str | int | float | bool)
            or (isinstance(item, str) and len(item) > 1000)
            or (isinstance(item, float) and not math.isfinite(item))  # NaN and Infinity are not JSON
        ):
            raise ReportError(f"{path}.{key[:50]}: must be a string, number or boolean")
        props[key] = item
    return props
