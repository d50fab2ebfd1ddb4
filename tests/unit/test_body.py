"""Body limits: raw size, inflated size (gzip bombs are refused without inflating them)."""

from __future__ import annotations

import asyncio
import gzip
import random
from collections.abc import AsyncIterator

import pytest
from starlette.requests import Request

from tracehouse.collector import MalformedPayload, PayloadTooLarge
from tracehouse.collector.admission import ByteBudget
from tracehouse.collector.body import MAX_GZIP_MEMBERS, decode_content, read_body, read_limited
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


def test_a_body_of_many_gzip_members_is_refused_in_one_pass() -> None:
    # 100,000 empty members (2 MB) took 6.6 s, every port stalled: the rest of the body was copied
    # once per member. Now one pass, and more than MAX_GZIP_MEMBERS members are refused.
    members = [gzip.compress(b"%d," % i) for i in range(MAX_GZIP_MEMBERS)]
    assert decode_content(b"".join(members), "gzip", 10_000) == b"".join(b"%d," % i for i in range(MAX_GZIP_MEMBERS))
    with pytest.raises(MalformedPayload, match=f"gzip body has more than {MAX_GZIP_MEMBERS} members"):
        decode_content(gzip.compress(b"") * 100_000, "gzip", 16 * 1024 * 1024)


def test_a_member_longer_than_a_read_chunk_is_inflated_whole() -> None:
    big = random.Random(7).randbytes(300_000)  # does not compress
    body = gzip.compress(big, compresslevel=1) + gzip.compress(b"tail")
    assert len(body) > 4 * (1 << 16)
    assert decode_content(body, "gzip", len(big) + 4) == big + b"tail"


def request_of(declared: int, *parts: bytes) -> Request:
    """A request declaring `declared` bytes whose body arrives as `parts`, then stalls (disconnects)."""
    messages = iter(
        [*({"type": "http.request", "body": p, "more_body": True} for p in parts), {"type": "http.disconnect"}]
    )

    async def receive() -> dict[str, object]:
        return next(messages)

    return Request(
        {"type": "http", "method": "POST", "headers": [(b"content-length", str(declared).encode())]}, receive
    )


def test_a_declared_length_holds_only_the_bytes_that_arrived() -> None:
    # Reserved at once, 16 clients declaring 16 MiB and dripping one byte held the whole budget.
    budget = ByteBudget(100)

    async def read() -> None:
        with budget.lease() as lease:
            try:
                await read_body(request_of(90, b"abc"), 100, lease)
            finally:
                assert lease.held == 3
                assert budget.used == 3

    with pytest.raises(ClientGone):
        asyncio.run(read())


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    async def read() -> bytes:
        with ByteBudget(1000).lease() as lease:
            return await read_body(request_of(101, b"x" * 101), 100, lease)

    with pytest.raises(PayloadTooLarge, match="larger than the limit of 100 bytes"):
        asyncio.run(read())
