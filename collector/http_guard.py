"""HTTP/1.1 limits uvicorn does not enforce: a cap on the bytes of a request head, a deadline
for the head and another for the body, and a bound on requests in flight answered with a
retryable 503. A client that drips bytes, never finishes its headers or streams headers
forever gets 408/431 and its connection closed: it can hold neither memory nor a slot.

Must never buffer more than `max_header_bytes` (plus one read) of a request head.
"""

from __future__ import annotations

import asyncio
import http
import logging
from asyncio import TimerHandle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["HttpLimits", "RequestLimit", "guarded_http_protocol"]

log = logging.getLogger(__name__)

LINGER_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """`header_timeout`: seconds from a connection's first byte (or its opening) to the end of a
    request's headers; `body_timeout`: seconds from there to the end of its body."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_header_bytes: int = 64 * 1024


def guarded_http_protocol(header_timeout: float, body_timeout: float) -> type[asyncio.Protocol]:
    """The uvicorn `http` protocol class enforcing these deadlines (and the head size cap)."""
    limits = HttpLimits(header_timeout=header_timeout, body_timeout=body_timeout)
    return type("GuardedHttpProtocol", (GuardedHttpProtocol,), {"limits": limits})


class GuardedHttpProtocol(HttpToolsProtocol):
    limits: ClassVar[HttpLimits] = HttpLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._in_head = True
        self._refused = False
        self._in_body = False
        self._timer: TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.limits.header_timeout, 408, "request headers not received in time")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering before the close: input is read and dropped
        super().data_received(data)
        if not self._in_head or self.transport.is_closing():
            return
        # Still in the head after the whole read: every byte of it was head.
        self._head_bytes += len(data)
        if self._head_bytes > self.limits.max_header_bytes:
            self._refuse(431, f"request head larger than {self.limits.max_header_bytes} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes = True, 0
        if self._timer is None:
            self._arm(self.limits.header_timeout, 408, "request headers not received in time")

    def on_headers_complete(self) -> None:
        self._in_head, self._in_body = False, True
        self._disarm()
        self._timer = self.loop.call_later(self.limits.body_timeout, self._body_overdue)
        super().on_headers_complete()

    def _body_overdue(self) -> None:
        if self.flow is not None and self.flow.read_paused:
            # We stopped reading (the app is behind): the client is not the slow one.
            self._timer = self.loop.call_later(self.limits.body_timeout, self._body_overdue)
        else:
            self._refuse(408, "request body not received in time")

    def on_message_complete(self) -> None:
        self._in_body = False
        self._disarm()
        super().on_message_complete()

    def shutdown(self) -> None:
        """The server stops: a request whose body is still coming is answered 503 and closed now.
        Left to run, a client dripping its body held the stop for uvicorn's 5 s, which then cancelled
        the request and logged a traceback for each (operator review)."""
        if self._in_body:
            self._refuse(503, "the server is shutting down; send the request again")
            return
        super().shutdown()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        super().handle_websocket_upgrade()

    def _arm(self, seconds: float, status: int, why: str) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._refuse, status, why)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _refuse(self, status: int, why: str) -> None:
        """Answer `status` (unless an answer is already out) and close. The close lingers a
        moment, dropping input: closing with unread input sends a reset, and the client would
        lose the answer. The app, if it still waits for the body, sees the client gone."""
        self._disarm()
        if self.transport.is_closing() or self._refused:
            return
        self._refused = True
        log.info("closing an HTTP connection from %s: %s", _peer(self.client), why)
        cycle = self.cycle
        if cycle is not None and cycle.response_started and not cycle.response_complete:
            self.transport.close()  # an answer is half written: cut it short
            return
        if cycle is None or not cycle.response_started:
            self.transport.write(_plain_response(status, why))
        if cycle is not None:
            cycle.disconnected = True
            cycle.message_event.set()
        try:
            if self.transport.can_write_eof():
                self.transport.write_eof()
        except OSError:  # the peer is already gone (a reset raced the deadline): nothing to linger for
            self.transport.close()
            return
        self._timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)


def _plain_response(status: int, message: str) -> bytes:
    body = (message + "\n").encode()
    head = f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n"
    head += f"content-type: text/plain; charset=utf-8\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
    return head.encode("ascii") + body


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "unknown peer"


#: The answer to a request refused for the limit: (content type, body) from the request's scope
#: and the message; plain text when none is given.
Refusal = Callable[[Scope, str], tuple[bytes, bytes]]


class RequestLimit:
    """ASGI middleware: at most `limit` HTTP requests in flight; past it a 503 with
    `Retry-After`, at once, in the shape `answer` gives (`on_refused` hears of each). Counts
    requests, not connections: idle keep-alive connections cost nothing here (uvicorn's
    `limit_concurrency` counts them and answers without `Retry-After`). The `exempt` paths
    (`GET /metrics`) are neither counted nor refused: slow senders must not blind the monitoring."""

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        answer: Refusal | None = None,
        on_refused: Callable[[str], None] | None = None,
        exempt: frozenset[str] = frozenset({"/metrics"}),
    ) -> None:
        self.app = app
        self.limit = limit
        self.answer = answer or _plain
        self.on_refused = on_refused
        self.exempt = exempt
        self.active = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        if self.active >= self.limit:
            message = f"{self.active} requests are in flight, the most this collector takes; retry later"
            if self.on_refused is not None:
                self.on_refused(message)
            await _too_busy(send, *self.answer(scope, message))
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1


def _plain(scope: Scope, message: str) -> tuple[bytes, bytes]:
    return b"text/plain; charset=utf-8", (message + "\n").encode()


async def _too_busy(send: Send, content_type: bytes, body: bytes) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"1"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})
