"""Every dashboard page says what went wrong instead of going blank: when the query API cannot be
reached, and when it answers something the page cannot use (a real HTTP server on loopback that
answers every request with a JSON object of the wrong shape)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tracehouse.dashboard.app import render_page
from tracehouse.query.client import QueryClient

PAGES = ["/", "/map", "/breakers", "/service/orders", f"/trace/{'ab' * 16}"]


class _WrongShape(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"unexpected": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def wrong_shape() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _WrongShape)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _messages(base_url: str) -> list[tuple[str, str]]:
    async def draw() -> list[tuple[str, str]]:
        client = QueryClient(base_url, timeout=5)
        try:
            pages = [await render_page(client, path, "") for path in PAGES]
        finally:
            await client.aclose()
        return [(page.id, page.children) for page in pages]

    return asyncio.run(draw())


def test_an_unreachable_api_is_a_message_on_every_page() -> None:
    for element, text in _messages(f"http://127.0.0.1:{_closed_port()}"):
        assert element == "page-error"
        assert text.startswith("The query API answered 503: query API unreachable"), text


def test_an_answer_of_the_wrong_shape_is_a_message_on_every_page(wrong_shape: str) -> None:
    for element, text in _messages(wrong_shape):
        assert element == "page-error"
        assert text == "This page could not be drawn (KeyError); the server's log has the details.", text
