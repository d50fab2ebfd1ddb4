"""The DNS-rebinding guard of the query API and dashboard, as ASGI middleware.

A listener on loopback without an API token is open to whatever runs on the machine, a browser's
web pages included once their own name resolves to 127.0.0.1 (DNS rebinding): such a request
names the page's site in ``Host``. So a request that arrived on a loopback address and that no
token admitted (`auth.ADMITTED`) must name the loopback — 127.0.0.1, localhost, [::1], any port —
or a name the operator allowed; anything else gets 421 saying how to allow a name. Never looks at
requests on other addresses (there the network reaches the port anyway: that is what tokens are for).
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Iterable

from tracehouse.query.auth import ADMITTED, ASGIApp, Receive, Scope, Send

__all__ = ["ALLOWED_HOSTS_ENV", "LOOPBACK_NAMES", "LoopbackHosts", "allowed_hosts_from_env"]

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]"})
#: Host names a loopback listener without a token answers besides `LOOPBACK_NAMES`: comma- or
#: space-separated; ``*`` for any.
ALLOWED_HOSTS_ENV = "TRACEHOUSE_ALLOWED_HOSTS"


def allowed_hosts_from_env() -> tuple[str, ...]:
    return tuple(os.environ.get(ALLOWED_HOSTS_ENV, "").replace(",", " ").split())


class LoopbackHosts:
    def __init__(self, app: ASGIApp, allowed: Iterable[str] = ()) -> None:
        self.app = app
        extra = {_name(host) for host in allowed}
        self._any = "*" in extra
        self._allowed = LOOPBACK_NAMES | extra

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not self._any and not scope.get(ADMITTED):
            local = _loopback_literal(scope.get("server"))
            host = _host(scope)
            if local is not None and host is not None and _name(host) not in self._allowed | {local}:
                await _refuse(scope, send, host)
                return
        await self.app(scope, receive, send)


def _host(scope: Scope) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == b"host":
            return str(value.decode("latin-1"))
    return None  # HTTP/1.0 without Host: no browser sends that


def _name(host: str) -> str:
    """The name of a ``Host`` value, without its port or a final dot, lowercase: ``[::1]:80`` ->
    ``[::1]``, ``localhost.:80`` -> ``localhost``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.partition(":")[0].rstrip(".")


def _loopback_literal(server: object) -> str | None:
    """The address the request arrived on, as a ``Host`` would write it, if it is a loopback one."""
    if not isinstance(server, (tuple, list)) or not server:
        return None
    try:
        address = ipaddress.ip_address(str(server[0]))
    except ValueError:  # a Unix socket, a test client's made-up name
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    if not (address.is_loopback or (mapped is not None and mapped.is_loopback)):
        return None
    return f"[{address}]" if address.version == 6 else str(address)


async def _refuse(scope: Scope, send: Send, host: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": "Host not allowed"})
        return
    message = (
        f"Host {host[:100]!r} refused: this Tracehouse listens on loopback without an API token, so it answers "
        "only requests for 127.0.0.1, localhost or [::1] (a guard against DNS rebinding). To open it under "
        f"another name, start it with --allowed-hosts name[,name...] ({ALLOWED_HOSTS_ENV}) or an API token "
        "(--api-token)"
    )
    body = json.dumps({"error": {"status": 421, "message": message}}).encode()
    await send({"type": "http.response.start", "status": 421, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
