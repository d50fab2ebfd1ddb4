"""The optional API token of the query API and dashboard, as ASGI middleware.

With a token set, every request must carry ``Authorization: Bearer <token>`` or the
``tracehouse_token`` cookie; a browser gets the cookie by opening any page once with
``?token=<token>`` (then it is redirected to the same URL without it). Refusals are 401 and say
nothing about the data. Compared in constant time; never logged or echoed.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

__all__ = ["COOKIE", "TokenGate"]

COOKIE = "tracehouse_token"
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class TokenGate:
    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        offered = dict(query).get("token")
        if offered is not None and self._valid(offered):
            await _set_cookie_and_redirect(scope, send, offered, [(k, v) for k, v in query if k != "token"])
            return
        if self._valid(_bearer(headers.get("authorization", ""))) or self._valid(_cookie(headers.get("cookie", ""))):
            await self.app(scope, receive, send)
            return
        await _refuse(send)

    def _valid(self, presented: str | None) -> bool:
        if not presented:
            return False
        return hmac.compare_digest(presented.encode(), self._token)


def _bearer(authorization: str) -> str | None:
    scheme, _, value = authorization.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def _cookie(header: str) -> str | None:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:  # a malformed Cookie header is the same as none
        return None
    morsel = jar.get(COOKIE)
    return None if morsel is None else morsel.value


async def _set_cookie_and_redirect(scope: Scope, send: Send, token: str, rest: list[tuple[str, str]]) -> None:
    location = scope["path"] + (f"?{urlencode(rest)}" if rest else "")
    cookie = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [(b"location", location.encode("latin-1")), (b"set-cookie", cookie.encode("latin-1"))],
        }
    )
    await send({"type": "http.response.body", "body": b""})


async def _refuse(send: Send) -> None:
    message = "this Tracehouse requires an API token: send 'Authorization: Bearer <token>', or open ?token=<token> once"
    body = json.dumps({"error": {"status": 401, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")],
        }
    )
    await send({"type": "http.response.body", "body": body})
