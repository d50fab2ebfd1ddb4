"""The API token gate as ASGI middleware, driven in process: the cookie redirect stays on this
site and marks the cookie Secure over https; a WebSocket without the token is closed (1008), not
answered with an HTTP response it cannot carry."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import httpx
import pytest

from tracehouse.query.auth import ADMITTED, TokenGate

TOKEN = "api-secret-123"
Message = MutableMapping[str, Any]


async def _inner(scope: Message, receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.accept"})
        return
    body = b"admitted" if scope.get(ADMITTED) else b"unmarked"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def _get(url: str, **kwargs: Any) -> httpx.Response:
    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=TokenGate(_inner, token=TOKEN))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:16686") as client:
            return await client.get(url, **kwargs)

    return asyncio.run(get())


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("//evil.example/", "/evil.example/"),
        ("///evil.example/x", "/evil.example/x"),
        ("/%5Cevil.example/", "/evil.example/"),
        ("/%5C%5Cevil.example/", "/evil.example/"),
        ("/map", "/map"),
        ("/", "/"),
        ("/%09/evil.example/", "/%09/evil.example/"),
    ],
)
def test_the_cookie_redirect_never_leaves_this_site(path: str, location: str) -> None:
    """`//evil.example/?token=<valid>` answered `location: //evil.example/`: another site."""
    answer = _get(f"http://127.0.0.1:16686{path}?token={TOKEN}&lookback=1h")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"{location}?lookback=1h"


def test_the_cookie_is_secure_over_https_only() -> None:
    plain = _get(f"/?token={TOKEN}").headers["set-cookie"]
    assert "HttpOnly" in plain
    assert "Secure" not in plain

    async def over_https() -> httpx.Response:
        transport = httpx.ASGITransport(app=TokenGate(_inner, token=TOKEN))
        async with httpx.AsyncClient(transport=transport, base_url="https://tracehouse.example") as client:
            return await client.get(f"/?token={TOKEN}")

    assert "; Secure" in asyncio.run(over_https()).headers["set-cookie"]


def test_a_forwarded_proto_header_alone_does_not_make_the_cookie_secure() -> None:
    """The scheme is uvicorn's, which believes X-Forwarded-Proto from trusted proxies only."""
    answer = _get(f"/?token={TOKEN}", headers={"x-forwarded-proto": "https"})
    assert "Secure" not in answer.headers["set-cookie"]


def test_what_the_token_admits_is_marked_for_the_host_guard() -> None:
    assert _get("/", headers={"authorization": f"Bearer {TOKEN}"}).text == "admitted"


def _websocket(query: bytes) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/ws", "query_string": query, "headers": [], "scheme": "ws"}
    asyncio.run(TokenGate(_inner, token=TOKEN)(scope, receive, send))
    return sent


def test_a_websocket_without_the_token_is_closed_with_policy_violation() -> None:
    """It was a 500 and a RuntimeError: an HTTP response was sent on a WebSocket scope."""
    sent = _websocket(b"")
    assert [m["type"] for m in sent] == ["websocket.close"]
    assert sent[0]["code"] == 1008


def test_a_websocket_with_the_token_in_its_query_is_admitted() -> None:
    assert [m["type"] for m in _websocket(f"token={TOKEN}".encode())] == ["websocket.accept"]
