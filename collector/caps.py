"""The caps on one attribute map, as the store applies them to OTLP spans (storage migration
0004: the first 1,024 attributes, keys cut to 256 characters, values to 65,536) and the mark of
a map that was cut, `tracehouse.truncated` = "true".

The OTLP view cuts and marks span attributes itself; the maps it only cuts (the resource's, an
event's, a link's) are marked here, before the insert: `mark_if_cut` puts the mark first, where
the cut keeps it. Zipkin spans are capped here whole (`capped`).
"""

from __future__ import annotations

from typing import Any

MAX_ATTRIBUTES = 1024
MAX_KEY_CHARS = 256
MAX_VALUE_CHARS = 65536
MAX_BYTES_VALUE = 49152  # base64 of it is 65,536 characters
TRUNCATED = "tracehouse.truncated"


def capped(attributes: dict[str, str]) -> dict[str, str]:
    """`attributes` within the caps: when anything was cut, with the mark."""
    if len(attributes) <= MAX_ATTRIBUTES and all(
        len(key) <= MAX_KEY_CHARS and len(value) <= MAX_VALUE_CHARS for key, value in attributes.items()
    ):
        return attributes
    kept = list(attributes.items())[:MAX_ATTRIBUTES]
    cut = {key[:MAX_KEY_CHARS]: value[:MAX_VALUE_CHARS] for key, value in kept}
    cut[TRUNCATED] = "true"
    return cut


def mark_if_cut(attributes: Any, first: str = "") -> bool:
    """Put the mark first in a repeated OTLP `KeyValue` field (strict or lenient message) that the
    store will cut, and the attribute named `first` after it, so that the cut keeps both (a
    resource's service.name past its 1,024th attribute). Whether it was marked."""
    if not _cut(attributes):
        return False
    if first and len(attributes) >= MAX_ATTRIBUTES:  # the mark takes one of the places kept
        index = next((i for i, kv in enumerate(attributes) if _text(kv.key) == first), None)
        if index is not None and index >= MAX_ATTRIBUTES - 1:
            attributes.insert(0, attributes.pop(index))
    mark = attributes.add()
    text = isinstance(mark.key, str)
    mark.key = TRUNCATED if text else TRUNCATED.encode()
    mark.value.string_value = "true" if text else b"true"
    attributes.insert(0, attributes.pop())
    return True


def may_be_cut(message: Any) -> bool:
    """A cheap test before `mark_if_cut` for an event or a link: whether its attributes may hold a
    value the store cuts (none can, within `MAX_BYTES_VALUE` encoded bytes) or more than
    `MAX_ATTRIBUTES` of them. One C call for the common case; looking at each attribute costs
    ~0.6 µs, which every exception event would pay. A key over `MAX_KEY_CHARS` in a small event or
    link is cut without the mark."""
    size = message.ByteSize()
    return bool(size > MAX_BYTES_VALUE or (size > 2 * MAX_ATTRIBUTES and len(message.attributes) > MAX_ATTRIBUTES))


def _cut(attributes: Any) -> bool:
    """Whether the store cuts something of this `KeyValue` list (an array or key/value list
    value by the size of its encoding, which its JSON text is about as long as)."""
    if len(attributes) > MAX_ATTRIBUTES:
        return True
    for kv in attributes:
        if kv.ByteSize() <= MAX_KEY_CHARS:  # nothing in it is long enough to be cut
            continue
        if _chars(kv.key, MAX_KEY_CHARS) > MAX_KEY_CHARS:
            return True
        value = kv.value
        kind = value.WhichOneof("value")
        if kind == "string_value" and _chars(value.string_value, MAX_VALUE_CHARS) > MAX_VALUE_CHARS:
            return True
        if kind == "bytes_value" and len(value.bytes_value) > MAX_BYTES_VALUE:
            return True
        if kind in ("array_value", "kvlist_value") and value.ByteSize() > MAX_VALUE_CHARS:
            return True
    return False


def _chars(text: str | bytes, cap: int) -> int:
    """Characters of `text` (lenient messages hold UTF-8 bytes), counted only past `cap` bytes."""
    if isinstance(text, bytes) and len(text) > cap:
        return len(text.decode("utf-8", "replace"))
    return len(text)


def _text(key: str | bytes) -> str:
    return key.decode("utf-8", "replace") if isinstance(key, bytes) else key
