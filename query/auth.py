"""The optional API token of the query API and dashboard, as ASGI middleware.

With a token set, every request must carry ``Authorization: Bearer <token>`` or the
``tracehouse_token`` cookie; a browser gets the cookie by opening any page once with
``?token=<token>`` (then it is redirected to the same path on this site without it; the cookie is
``Secure`` when the request came over https). Refusals are 401 (a WebSocket: closed with 1008) and
say nothing about the data. Compared in constant time; never logged or echoed. A request it admits
is marked (`ADMITTED` in the scope): the DNS-rebinding guard (`hosts.py`) leaves those alone.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

__all__ = ["ADMITTED", "COOKIE", "TokenGate"]

COOKIE = "tracehouse_token"
#: Scope key set on every request the token admitted.
ADMITTED = "tracehouse.token_admitted"
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
        presented = (offered, _bearer(headers.get("authorization", "")), _cookie(headers.get("cookie", "")))
        if scope["type"] == "http" and offered is not None and self._valid(offered):
            await _set_cookie_and_redirect(scope, send, offered, [(k, v) for k, v in query if k != "token"])
            return
        if any(self._valid(p) for p in presented):
            scope[ADMITTED] = True
            await self.app(scope, receive, send)
            return
        await _refuse(scope, send)

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
    # One leading slash only: `//host/...` (or `/\\host`) is another site's URL to a browser.
    path = quote(scope["path"].lstrip("/\\"), safe="/!$&'()*+,;=:@-._~")
    location = "/" + path + (f"?{urlencode(rest)}" if rest else "")
    # https as the server saw it: uvicorn takes X-Forwarded-Proto from the proxies it trusts only
    # (FORWARDED_ALLOW_IPS, loopback by default), never from whoever sends the header.
    secure = "; Secure" if scope.get("scheme") == "https" else ""
    cookie = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}"
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [(b"location", location.encode("latin-1")), (b"set-cookie", cookie.encode("latin-1"))],
        }
    )
    await send({"type": "http.response.body", "body": b""})


async def _refuse(scope: Scope, send: Send) -> None:
    if scope["type"] == "websocket":  # no HTTP answer on a WebSocket: the handshake is refused
        await send({"type": "websocket.close", "code": 1008, "reason": "an API token is required"})
        return
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
