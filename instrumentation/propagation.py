"""Context propagation: the service's propagator built from names, and a header getter.

Extraction always reads every format Tracehouse supports, whatever is chosen: the chosen ones
first, in their order, then W3C ``traceparent``, then B3 (the single ``b3`` header before
``X-B3-*``); the first that carries a caller wins; then ``baggage``. The names choose what is injected; ``none`` turns
propagation off both ways. Names resolve through the ``opentelemetry_propagator`` entry points, as
``OTEL_PROPAGATORS`` does, except ``b3`` and ``b3multi`` (see :mod:`.b3`). API only, never the SDK.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib.metadata import entry_points
from typing import cast

from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context, get_current
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tracehouse.instrumentation.b3 import B3MultiHeader, B3SingleHeader
from tracehouse.instrumentation.config import ConfigError

__all__ = [
    "HEADER_GETTER",
    "NONE",
    "HeaderGetter",
    "ServicePropagator",
    "available_propagators",
    "build_propagator",
]

#: The propagator name that means "propagate nothing", as in ``OTEL_PROPAGATORS=none``.
NONE = "none"
_GROUP = "opentelemetry_propagator"


def available_propagators() -> frozenset[str]:
    """Names usable in ``propagators``: every installed propagator entry point, and ``none``."""
    return frozenset({ep.name for ep in entry_points(group=_GROUP)} | {NONE})


#: Our own propagators for these names, in place of the entry points' (the stock B3 ones lose
#: "deny", "defer", debug and the parent span id).
_BUILT_IN: Mapping[str, Callable[[], TextMapPropagator]] = {
    "tracecontext": TraceContextTextMapPropagator,
    "baggage": W3CBaggagePropagator,
    "b3": B3SingleHeader,
    "b3multi": B3MultiHeader,
}


def build_propagator(names: Iterable[str]) -> ServicePropagator:
    """Injects with each named propagator, in order; extracts as the module docstring says."""
    chosen = [name for name in names if name != NONE]
    if not chosen:
        return ServicePropagator(readers=(), writers=())
    writers = [_load(name) for name in chosen]
    # The chosen formats are read first, in their order, then the others (a stale traceparent a
    # proxy added must not win over the B3 a b3-only service chose). One B3 reader serves both
    # forms; baggage is read after the caller's span is found.
    readers: dict[str, TextMapPropagator] = {}
    for name, writer in zip(chosen, writers, strict=True):
        if name != "baggage":
            readers.setdefault("b3" if name == "b3multi" else name, writer if name not in _BUILT_IN else _reader(name))
    for name in ("tracecontext", "b3"):
        readers.setdefault(name, _reader(name))
    return ServicePropagator(readers=tuple(readers.values()), writers=writers, extras=(W3CBaggagePropagator(),))


def _reader(name: str) -> TextMapPropagator:
    """The reader of a built-in format: W3C's, or one B3 reader for both B3 forms."""
    return TraceContextTextMapPropagator() if name == "tracecontext" else B3MultiHeader()


def _load(name: str) -> TextMapPropagator:
    if name in _BUILT_IN:
        return _BUILT_IN[name]()
    for ep in entry_points(group=_GROUP, name=name):
        return cast(TextMapPropagator, ep.load()())
    raise ConfigError("propagators", f"unknown propagator {name!r}")


class ServicePropagator(TextMapPropagator):
    """Extracts the caller with the first of ``readers`` that finds one, then applies every one of
    ``extras`` (baggage); injects with each of ``writers``. Without readers, ``extract`` returns the
    context unchanged (never ``None``, which server instrumentations would attach and fail on).
    """

    def __init__(
        self,
        readers: Sequence[TextMapPropagator],
        writers: Sequence[TextMapPropagator],
        extras: Sequence[TextMapPropagator] = (),
    ) -> None:
        self._readers, self._writers, self._extras = tuple(readers), tuple(writers), tuple(extras)

    def extract(
        self, carrier: CarrierT, context: Context | None = None, getter: Getter[CarrierT] = default_getter
    ) -> Context:
        context = get_current() if context is None else context
        for reader in self._readers:
            found = reader.extract(carrier, context, getter=getter)
            # A reader that finds nothing returns the context unchanged (Context is a dict).
            if found != context:
                context = found
                break
        for extra in self._extras:
            context = extra.extract(carrier, context, getter=getter)
        return context

    def inject(
        self, carrier: CarrierT, context: Context | None = None, setter: Setter[CarrierT] = default_setter
    ) -> None:
        for writer in self._writers:
            writer.inject(carrier, context, setter=setter)

    @property
    def fields(self) -> set[str]:
        return set().union(*(writer.fields for writer in self._writers))


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
