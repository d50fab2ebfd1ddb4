"""Request bodies within limits: the raw size and, for gzip, the inflated size.

A gzip bomb is refused once `limit` bytes have been inflated, never inflated whole. A client
that declares a large body and drips it holds its reservation only until the connection's body
deadline (`http_guard`) closes it; a body of unknown length holds what has arrived of it.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Callable

from starlette.requests import ClientDisconnect, Request

from tracehouse.collector.admission import Lease
from tracehouse.collector.errors import ClientGone, MalformedPayload, PayloadTooLarge, UnsupportedMediaType


async def read_body(request: Request, limit: int, lease: Lease) -> bytes:
    """The request's body, inflated, with its raw and inflated sizes held on `lease`: a declared
    length at once, a body without one (chunked) as its bytes arrive — reserving the whole limit
    for it let a few clients that send one chunk and stall hold the budget of every sender."""
    declared = request.headers.get("content-length", "")
    known = declared.isdigit()
    if known:
        lease.reserve(min(int(declared), limit))
    try:
        body = await read_limited(request.stream(), limit, None if known else lease.reserve)
    except ClientDisconnect:
        # The client left (or the connection's body deadline closed it): nobody reads the answer.
        raise ClientGone("the connection closed before the whole body arrived") from None
    encoding = request.headers.get("content-encoding")
    inflated = decode_content(body, encoding, limit)
    if inflated is not body:
        lease.reserve(len(inflated))
    return inflated


async def read_limited(chunks: AsyncIterator[bytes], limit: int, reserve: Callable[[int], None] | None = None) -> bytes:
    """The whole body, or `PayloadTooLarge` as soon as it passes `limit` bytes; each chunk
    `reserve`d as it arrives, when given."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is larger than the limit of {limit} bytes")
        if reserve is not None:
            reserve(len(chunk))
        parts.append(chunk)
    return b"".join(parts)


def decode_content(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo `Content-Encoding` (identity or gzip), inflating at most `limit` bytes."""
    encoding = (encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported; use gzip or none")
    parts: list[bytes] = []
    size = 0
    rest = body
    while True:  # a gzip body may hold several members, one after another (RFC 1952)
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            data = inflater.decompress(rest, limit + 1 - size)
        except zlib.error as exc:
            raise MalformedPayload(f"body is not valid gzip: {exc}") from None
        size += len(data)
        if size > limit:
            raise PayloadTooLarge(f"decompressed body is larger than the limit of {limit} bytes")
        if not inflater.eof:
            raise MalformedPayload("gzip body is truncated")
        parts.append(data)
        rest = inflater.unused_data
        if not rest:
            return b"".join(parts)
