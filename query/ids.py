"""Trace-id parsing shared by every API flavour."""

from __future__ import annotations

import re

from tracehouse.query.errors import BadRequest

_HEX = re.compile(r"^[0-9a-f]+$")


def normalize_trace_id(text: str) -> str:
    """32 lowercase hex chars; a 64-bit (16 hex) id is left-padded with zeros, as
    OpenTelemetry stores 64-bit Zipkin/B3 ids."""
    value = text.strip().lower()
    if len(value) not in (16, 32) or not _HEX.match(value):
        raise BadRequest(f"trace id {text[:80]!r} is malformed: expected 16 or 32 hex characters")
    if value.strip("0") == "":
        raise BadRequest("trace id must not be all zeros")
    return value.rjust(32, "0")
