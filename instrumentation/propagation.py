"""Context propagation: the composite propagator built from names, and a header getter.

Names resolve through the ``opentelemetry_propagator`` entry points, as ``OTEL_PROPAGATORS`` does,
so any installed propagator (``b3``, ``b3multi``, ``jaeger``, ``xray`` ...) works. Both B3
propagators extract the single ``b3`` header and the ``X-B3-*`` headers alike; the name only
chooses what is injected. This module uses the OpenTelemetry API only, never the SDK.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from importlib.metadata import entry_points
from typing import cast

from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import Getter, TextMapPropagator

from tracehouse.instrumentation.config import ConfigError

__all__ = ["HEADER_GETTER", "NONE", "HeaderGetter", "available_propagators", "build_propagator"]

#: The propagator name that means "propagate nothing", as in ``OTEL_PROPAGATORS=none``.
NONE = "none"
_GROUP = "opentelemetry_propagator"


def available_propagators() -> frozenset[str]:
    """Names usable in ``propagators``: every installed propagator entry point, and ``none``."""
    return frozenset({ep.name for ep in entry_points(group=_GROUP)} | {NONE})


def build_propagator(names: Iterable[str]) -> CompositePropagator:
    """One propagator that injects and extracts with each named propagator, in order."""
    return CompositePropagator([_load(name) for name in names if name != NONE])


def _load(name: str) -> TextMapPropagator:
    for ep in entry_points(group=_GROUP, name=name):
        return cast(TextMapPropagator, ep.load()())
    raise ConfigError("propagators", f"unknown propagator {name!r}")


class HeaderGetter(Getter[Mapping[str, str]]):
    """Reads HTTP headers from a plain mapping, ignoring case as HTTP does.

    OpenTelemetry's default getter is case-sensitive, while propagators ask for lower-case
    names (``x-b3-traceid``); a mapping holding ``X-B3-TraceId`` would then extract nothing.
    """

    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        wanted = key.lower()
        values = [value for name, value in carrier.items() if name.lower() == wanted]
        return values or None

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list(carrier)


HEADER_GETTER = HeaderGetter()
