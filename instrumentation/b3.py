"""B3 propagation as Brave and Spring Cloud Sleuth speak it, with the parts the stock OpenTelemetry
B3 propagators drop: a sampling decision without ids (``b3: 0``), a deferred decision (ids without
``X-B3-Sampled``), debug (``X-B3-Flags: 1``), ``X-B3-ParentSpanId`` and 16-character 64-bit trace ids.

OpenTelemetry's ``SpanContext`` holds "sampled" or "not sampled" only, so the other B3 states are
context values read by :class:`~tracehouse.instrumentation.sampling.CallerBased` (when a span starts)
and by injection. This module uses the OpenTelemetry API only, never the SDK, and never raises on
malformed headers: they are ignored, as Brave ignores them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.context import Context, create_key, get_current, get_value, set_value
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, format_span_id

__all__ = [
    "B3MultiHeader",
    "B3SingleHeader",
    "caller_decision",
    "deferred_to_us",
    "format_b3_trace_id",
]

SINGLE = "b3"
TRACE_ID, SPAN_ID, PARENT_SPAN_ID = "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid"
SAMPLED, FLAGS = "x-b3-sampled", "x-b3-flags"

_TRACE_ID = re.compile(r"[0-9a-fA-F]{16}|[0-9a-fA-F]{32}")
_SPAN_ID = re.compile(r"[0-9a-fA-F]{16}")
_ACCEPT, _DENY, _DEBUG = frozenset({"1", "true"}), frozenset({"0", "false"}), "d"

# The caller's SpanContext whose sampling decision is ours to make (B3 "defer").
_DEFERRED = create_key("tracehouse-b3-deferred")
# The caller's decision when it sent no ids (``b3: 0``, ``b3: 1``, ``b3: d``): True or False.
_DECISION = create_key("tracehouse-b3-decision")
# The trace id the caller marked debug: propagated as debug for that trace only.
_DEBUG_TRACE = create_key("tracehouse-b3-debug")


def format_b3_trace_id(trace_id: int) -> str:
    """Hex trace id as Brave writes it: 16 characters when the high 64 bits are zero (a Sleuth
    64-bit id), else 32."""
    return f"{trace_id:016x}" if trace_id >> 64 == 0 else f"{trace_id:032x}"


def deferred_to_us(context: Context | None) -> bool:
    """Whether the parent in ``context`` (default: the current one) is a B3 caller that sent ids
    without a sampling decision, leaving the decision to this service."""
    parent = trace.get_current_span(context).get_span_context()
    return parent.is_valid and get_value(_DEFERRED, context) is parent


def caller_decision(context: Context | None) -> bool | None:
    """The sampling decision of a B3 caller that sent no ids (``b3: 0`` is False), or ``None``.
    Applies to a span without a parent only, which is what such a request starts."""
    if trace.get_current_span(context).get_span_context().is_valid:
        return None
    decision = get_value(_DECISION, context)
    return decision if isinstance(decision, bool) else None


@dataclass(frozen=True, slots=True)
class _Headers:
    """What a B3 caller sent; ``sampled`` None is "defer"."""

    trace_id: str | None = None
    span_id: str | None = None
    sampled: bool | None = None
    debug: bool = False

    def context(self, base: Context) -> Context:
        """``base`` with the caller's span and decision, or ``base`` itself if there is nothing usable."""
        if self.trace_id is None and self.span_id is None:
            return base if self.sampled is None and not self.debug else self._decision_only(base)
        parent = self._parent()
        if parent is None:
            return base
        context = trace.set_span_in_context(NonRecordingSpan(parent), base)
        if self.debug:
            return set_value(_DEBUG_TRACE, parent.trace_id, context)
        if self.sampled is None:
            # No "maybe" flag exists in a SpanContext: ParentBased would read the missing flag as
            # "not sampled" and drop the trace. The parent keeps its ids (so the trace id and the
            # parent span survive) and is marked deferred; CallerBased then asks its root sampler.
            return set_value(_DEFERRED, parent, context)
        return context

    def _parent(self) -> SpanContext | None:
        trace_id, span_id = self.trace_id, self.span_id
        if trace_id is None or span_id is None or not (_TRACE_ID.fullmatch(trace_id) and _SPAN_ID.fullmatch(span_id)):
            return None
        flags = TraceFlags(TraceFlags.SAMPLED if self.debug or self.sampled else TraceFlags.DEFAULT)
        parent = SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=True, trace_flags=flags)
        return parent if parent.is_valid else None

    def _decision_only(self, base: Context) -> Context:
        context = set_value(_DECISION, bool(self.sampled or self.debug), base)
        # Debug without ids: the new trace's id is not known yet; 0 marks "whatever trace starts here".
        return set_value(_DEBUG_TRACE, 0, context) if self.debug else context


def _first(getter: Getter[CarrierT], carrier: CarrierT, key: str) -> str | None:
    values = getter.get(carrier, key)
    return values[0].strip() if values else None


def _read_single(value: str) -> _Headers | None:
    """``{sampling}`` or ``{trace}-{span}[-{sampling}[-{parent}]]``; None if malformed."""
    fields = value.split("-")
    if len(fields) == 1:
        return _sampling_only(fields[0])
    if len(fields) > 4:
        return None
    sampling = fields[2] if len(fields) > 2 else None
    if sampling is not None and sampling not in _ACCEPT | _DENY | {_DEBUG}:
        return None
    sampled = None if sampling is None else sampling != "0" and sampling != "false"
    return _Headers(fields[0], fields[1], sampled, sampling == _DEBUG)


def _sampling_only(value: str) -> _Headers | None:
    if value == _DEBUG:
        return _Headers(sampled=True, debug=True)
    if value in _ACCEPT | _DENY:
        return _Headers(sampled=value in _ACCEPT)
    return None


def _read_multi(getter: Getter[CarrierT], carrier: CarrierT) -> _Headers:
    sampled = (_first(getter, carrier, SAMPLED) or "").lower()
    return _Headers(
        trace_id=_first(getter, carrier, TRACE_ID),
        span_id=_first(getter, carrier, SPAN_ID),
        sampled=True if sampled in _ACCEPT else False if sampled in _DENY else None,
        debug=_first(getter, carrier, FLAGS) == "1",
    )


class _B3(TextMapPropagator):
    """Extraction shared by both forms: the single ``b3`` header when present and well formed,
    else the ``X-B3-*`` headers. Injection writes the current span in each form's own headers
    (`_write`), nothing without a valid span."""

    def inject(
        self, carrier: CarrierT, context: Context | None = None, setter: Setter[CarrierT] = default_setter
    ) -> None:
        outgoing = _Outgoing.of(context)
        if outgoing is not None:
            self._write(carrier, outgoing, setter)

    def _write(self, carrier: CarrierT, outgoing: _Outgoing, setter: Setter[CarrierT]) -> None:
        raise NotImplementedError

    def extract(
        self, carrier: CarrierT, context: Context | None = None, getter: Getter[CarrierT] = default_getter
    ) -> Context:
        base = get_current() if context is None else context
        single = _first(getter, carrier, SINGLE)
        headers = _read_single(single) if single else None
        return (headers or _read_multi(getter, carrier)).context(base)


@dataclass(frozen=True, slots=True)
class _Outgoing:
    """The B3 view of the span being propagated: ids as Brave writes them, and its sampling state."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    sampling: str  # "1", "0" or "d"

    @classmethod
    def of(cls, context: Context | None) -> _Outgoing | None:
        span = trace.get_current_span(context)
        span_context = span.get_span_context()
        if not span_context.is_valid:
            return None
        # An SDK span knows its parent (a non-recording one does not): Brave sends the parent
        # of the span whose id it sends, so the receiver could rebuild the edge on its own.
        parent = getattr(span, "parent", None)
        parent_id = format_span_id(parent.span_id) if isinstance(parent, SpanContext) and parent.is_valid else None
        sampling = "1" if span_context.trace_flags.sampled else "0"
        if sampling == "1" and get_value(_DEBUG_TRACE, context) in (span_context.trace_id, 0):
            sampling = _DEBUG
        return cls(format_b3_trace_id(span_context.trace_id), format_span_id(span_context.span_id), parent_id, sampling)


class B3MultiHeader(_B3):
    """``X-B3-TraceId``, ``X-B3-SpanId``, ``X-B3-ParentSpanId`` (when known), and ``X-B3-Sampled``,
    or ``X-B3-Flags: 1`` for debug, which implies sampled (the B3 specification: never both)."""

    def _write(self, carrier: CarrierT, outgoing: _Outgoing, setter: Setter[CarrierT]) -> None:
        setter.set(carrier, TRACE_ID, outgoing.trace_id)
        setter.set(carrier, SPAN_ID, outgoing.span_id)
        if outgoing.parent_span_id is not None:
            setter.set(carrier, PARENT_SPAN_ID, outgoing.parent_span_id)
        if outgoing.sampling == _DEBUG:
            setter.set(carrier, FLAGS, "1")
        else:
            setter.set(carrier, SAMPLED, outgoing.sampling)

    @property
    def fields(self) -> set[str]:
        return {TRACE_ID, SPAN_ID, PARENT_SPAN_ID, SAMPLED, FLAGS}


class B3SingleHeader(_B3):
    """``b3: {trace}-{span}-{1|0|d}[-{parent}]``."""

    def _write(self, carrier: CarrierT, outgoing: _Outgoing, setter: Setter[CarrierT]) -> None:
        fields = [outgoing.trace_id, outgoing.span_id, outgoing.sampling]
        if outgoing.parent_span_id is not None:
            fields.append(outgoing.parent_span_id)
        setter.set(carrier, SINGLE, "-".join(fields))

    @property
    def fields(self) -> set[str]:
        return {SINGLE}
