"""gzip for Dash's own answers (callbacks, layout, bundles), never for the API's: a 200-breaker
wall's update is ~800 KB of repetitive tile HTML every second, about a tenth of that compressed.
Streams (``text/event-stream``) are never compressed (Starlette leaves them alone).
"""

from __future__ import annotations

from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["DashGzip"]

DASH_PREFIX = "/_dash-"


class DashGzip:
    """Compresses answers under ``/_dash-`` (over 1 KiB, level 5: cheap next to the rendering)
    for clients that accept gzip; every other path goes through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._gzip = GZipMiddleware(app, minimum_size=1024, compresslevel=5)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope["path"]).startswith(DASH_PREFIX):
            await self._gzip(scope, receive, send)
        else:
            await self.app(scope, receive, send)
