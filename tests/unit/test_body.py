"""Body limits: raw size, inflated size (gzip bombs are refused without inflating them)."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator

import pytest
from starlette.requests import Request

from tracehouse.collector import MalformedPayload, PayloadTooLarge
from tracehouse.collector.admission import ByteBudget
from tracehouse.collector.body import decode_content, read_body, read_limited
from tracehouse.collector.errors import ClientGone, UnsupportedMediaType


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def test_read_limited_takes_a_body_at_the_limit() -> None:
    assert asyncio.run(read_limited(chunks(b"ab", b"cd"), 4)) == b"abcd"


def test_read_limited_refuses_past_the_limit() -> None:
    with pytest.raises(PayloadTooLarge, match="larger than the limit of 3 bytes"):
        asyncio.run(read_limited(chunks(b"ab", b"cd"), 3))


def test_gzip_round_trip() -> None:
    assert decode_content(gzip.compress(b"x" * 1000), "gzip", 1000) == b"x" * 1000


def test_gzip_bomb_is_refused() -> None:
    bomb = gzip.compress(bytes(200 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 1024 * 1024
    with pytest.raises(PayloadTooLarge, match="decompressed body is larger than the limit"):
        decode_content(bomb, "gzip", 16 * 1024 * 1024)


@pytest.mark.parametrize(
    ("body", "error", "message"),
    [
        (b"not gzip at all", MalformedPayload, "not valid gzip"),
        (gzip.compress(b"y" * 5000)[:-12], MalformedPayload, "truncated"),
    ],
)
def test_bad_gzip(body: bytes, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        decode_content(body, "gzip", 10_000)


def test_unknown_encoding_is_unsupported() -> None:
    with pytest.raises(UnsupportedMediaType, match="'br' is not supported"):
        decode_content(b"x", "br", 10)


def test_every_gzip_member_is_inflated() -> None:
    body = gzip.compress(b"first ") + gzip.compress(b"second")
    assert decode_content(body, "gzip", 100) == b"first second"
    with pytest.raises(PayloadTooLarge):
        decode_content(body, "gzip", 8)


def test_garbage_after_a_gzip_member_is_refused() -> None:
    with pytest.raises(MalformedPayload, match="not valid gzip"):
        decode_content(gzip.compress(b"ok") + b"trailing junk", "gzip", 100)


def test_a_client_gone_mid_body_is_counted_as_408_not_as_bad_input() -> None:
    """The body deadline answers 408 and closes; the app then sees the client gone. That is what
    `/metrics` counts, not a malformed body (400)."""
    messages = iter([{"type": "http.request", "body": b"ab", "more_body": True}, {"type": "http.disconnect"}])

    async def receive() -> dict[str, object]:
        return next(messages)

    request = Request({"type": "http", "method": "POST", "headers": [(b"content-length", b"10")]}, receive)

    async def read() -> bytes:
        with ByteBudget(100).lease() as lease:
            return await read_body(request, 100, lease)

    with pytest.raises(ClientGone) as gone:
        asyncio.run(read())
    assert gone.value.http_status == 408
