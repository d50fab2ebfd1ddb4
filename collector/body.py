"""Request bodies within limits: the raw size and, for gzip, the inflated size.

A gzip bomb is refused once `limit` bytes have been inflated, never inflated whole.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

from tracehouse.collector.errors import MalformedPayload, PayloadTooLarge, UnsupportedMediaType


async def read_limited(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The whole body, or `PayloadTooLarge` as soon as it passes `limit` bytes."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is larger than the limit of {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


def decode_content(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo `Content-Encoding` (identity or gzip), inflating at most `limit` bytes."""
    encoding = (encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported; use gzip or none")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise MalformedPayload(f"body is not valid gzip: {exc}") from None
    if len(data) > limit:
        raise PayloadTooLarge(f"decompressed body is larger than the limit of {limit} bytes")
    if not inflater.eof:
        raise MalformedPayload("gzip body is truncated")
    return data
