"""Dash's callback endpoint answers a body that is not a callback request with a 500 (it
indexes the parsed JSON blindly). This ASGI middleware answers such bodies with a 400 naming
what is wrong, before Dash sees them. It must never alter a well-formed callback request.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CallbackGuard"]

CALLBACK_PATH = "/_dash-update-component"
MAX_CALLBACK_BYTES = 8 * 1024 * 1024


class CallbackGuard:
    """Reads a `POST /_dash-update-component` body (at most `MAX_CALLBACK_BYTES`), checks it is
    a JSON object with `output` and `inputs`, and hands Dash the same bytes; else a 400/413."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith(CALLBACK_PATH):
            await self.app(scope, receive, send)
            return
        body, problem, status = await _read(receive)
        if problem:
            await _refuse(send, status, problem)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _read(receive: Receive) -> tuple[bytes, str, int]:
    """The body, and what is wrong with it ('' when nothing) with its status."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", "the client left before the body arrived", 400
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_CALLBACK_BYTES:
            return b"", f"callback body larger than {MAX_CALLBACK_BYTES} bytes", 413
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    return body, _problem(body), 400


def _problem(body: bytes) -> str:
    try:
        request = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        return f"callback body is not JSON: {exc}"
    if not isinstance(request, dict):
        return "callback body must be a JSON object"
    if not isinstance(request.get("output"), str) or not isinstance(request.get("inputs"), list):
        return "callback body needs 'output' (a string) and 'inputs' (a list)"
    return ""


async def _refuse(send: Send, status: int, problem: str) -> None:
    body = json.dumps({"error": problem}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
