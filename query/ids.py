"""Trace-id parsing shared by every API flavour."""

from __future__ import annotations

import re

from tracehouse.query.errors import BadRequest

_HEX = re.compile(r"^[0-9a-f]+$")


def normalize_trace_id(text: str) -> str:
    """32 lowercase hex chars, left-padded with zeros: a 64-bit (16 hex) id as OpenTelemetry stores
    64-bit Zipkin/B3 ids, and a shorter one as Zipkin (`normalizeTraceId`) and Jaeger read it —
    a sender may drop leading zeros, and the Zipkin receiver pads them back."""
    value = text.strip().lower()
    if not 1 <= len(value) <= 32 or not _HEX.match(value):
        raise BadRequest(f"trace id {text[:80]!r} is malformed: expected up to 32 hex characters (16 or 32 as a rule)")
    if value.strip("0") == "":
        raise BadRequest("trace id must not be all zeros")
    return value.rjust(32, "0")


def compact_trace_id(trace_id: str) -> str:
    """A stored (32 hex) trace id as Zipkin and Jaeger print it: a 64-bit id (high half zero)
    in 16 hex characters."""
    return trace_id[16:] if len(trace_id) == 32 and trace_id.startswith("0" * 16) else trace_id
