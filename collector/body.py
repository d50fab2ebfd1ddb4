"""Request bodies within limits: the raw size and, for gzip, the inflated size.

A gzip bomb is refused once `limit` bytes have been inflated, never inflated whole; a body of many
gzip members is read in one pass and refused past `MAX_GZIP_MEMBERS`. A body holds the budget's bytes
as they arrive, whatever length it declared: 16 clients declaring 16 MiB and dripping a byte each
held the whole 256 MiB budget until their body deadline (`http_guard`), refusing every other sender.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Callable

from starlette.requests import ClientDisconnect, Request

from tracehouse.collector.admission import Lease
from tracehouse.collector.errors import ClientGone, MalformedPayload, PayloadTooLarge, UnsupportedMediaType


async def read_body(request: Request, limit: int, lease: Lease) -> bytes:
    """The request's body, inflated, with its raw and inflated sizes held on `lease` as they arrive
    (reserving a declared length at once let clients that declare much and stall hold the budget of
    every sender); a declared length over `limit` is refused before reading."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is larger than the limit of {limit} bytes")
    try:
        body = await read_limited(request.stream(), limit, lease.reserve)
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


#: Gzip members one body may hold (RFC 1952 allows a series; exporters write one). Each costs a
#: decompressor: 100,000 empty members (a 2 MB body) kept the server busy for seconds.
MAX_GZIP_MEMBERS = 64
#: Compressed bytes handed to the decompressor at a time: what is left of a chunk after a member
#: ends is the only copy made (the rest of the body was copied once per member: quadratic).
_GZIP_CHUNK = 1 << 16


def decode_content(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo `Content-Encoding` (identity or gzip), inflating at most `limit` bytes."""
    encoding = (encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported; use gzip or none")
    view = memoryview(body)
    parts: list[bytes] = []
    size = offset = 0
    for _ in range(MAX_GZIP_MEMBERS):
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        while not inflater.eof:
            if offset >= len(body):
                raise MalformedPayload("gzip body is truncated")
            chunk = view[offset : offset + _GZIP_CHUNK]
            offset += len(chunk)
            try:
                data = inflater.decompress(chunk, limit + 1 - size)
            except zlib.error as exc:
                raise MalformedPayload(f"body is not valid gzip: {exc}") from None
            size += len(data)
            if size > limit:
                raise PayloadTooLarge(f"decompressed body is larger than the limit of {limit} bytes")
            parts.append(data)
        offset -= len(inflater.unused_data)
        if offset == len(body):
            return b"".join(parts)
    raise MalformedPayload(f"gzip body has more than {MAX_GZIP_MEMBERS} members")
