"""A service's own ``/hystrix.stream``: the Hystrix event stream of this process's breakers, as an
ASGI app, a WSGI app, or a tiny thread server (``serve_hystrix_stream``).

Events every 500 ms in the exact Hystrix format, ``ping:`` keep-alives, at most five clients at
once (the sixth gets 503, as in Hystrix). Reading the breakers takes their locks only briefly.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from tracehouse.instrumentation.breakers.hystrix import command_event, thread_pool_event, window_view
from tracehouse.instrumentation.breakers.registry import REGISTRY, Registry
from tracehouse.instrumentation.breakers.samples import breaker_properties, bucket_sample, pool_sample

__all__ = ["MAX_CLIENTS", "HystrixStreamASGI", "hystrix_events", "hystrix_stream_wsgi", "serve_hystrix_stream"]

MAX_CLIENTS = 5
TICK = 0.5
HEADERS = (
    ("Content-Type", "text/event-stream;charset=UTF-8"),
    ("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate"),
    ("Pragma", "no-cache"),
)
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


def hystrix_events(registry: Registry = REGISTRY) -> list[dict[str, Any]]:
    """One event per breaker and thread pool of this process, over each one's rolling window."""
    events = []
    for breaker in registry.breakers():
        properties = breaker_properties(breaker)
        samples = [bucket_sample(breaker, b, properties) for b in breaker.recent_buckets()]
        if samples:
            events.append(command_event(window_view({"local": samples}, breaker.config.window)))
    for pool in registry.pools():
        gauges = pool.gauges()
        samples = [pool_sample(pool, b, gauges) for b in pool.recent_buckets()]
        if samples:
            events.append(thread_pool_event(window_view({"local": samples}, pool.window.seconds, "threadpool")))
    return events


def _frame(registry: Registry) -> bytes:
    events = hystrix_events(registry)
    if not events:
        return b"ping: \n\n"
    return b"".join(b"data: " + json.dumps(e, separators=(",", ":")).encode() + b"\n\n" for e in events)


class _Clients:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def enter(self) -> bool:
        with self._lock:
            if self.count >= MAX_CLIENTS:
                return False
            self.count += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.count -= 1


class HystrixStreamASGI:
    """ASGI app: mount it at ``/hystrix.stream`` (Starlette ``Mount``/``Route``, FastAPI ``app.mount``)."""

    def __init__(self, registry: Registry = REGISTRY) -> None:
        self.registry = registry
        self._clients = _Clients()

    async def __call__(
        self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
    ) -> None:
        if scope["type"] != "http":
            return
        if not self._clients.enter():
            await _asgi_refuse(send)
            return
        try:
            headers = [(k.lower().encode(), v.encode()) for k, v in HEADERS]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            gone = asyncio.ensure_future(_disconnected(receive))
            try:
                while not gone.done():
                    await send({"type": "http.response.body", "body": _frame(self.registry), "more_body": True})
                    await asyncio.wait([gone], timeout=TICK)
            finally:
                gone.cancel()
        finally:
            self._clients.leave()


async def _disconnected(receive: Callable[[], Awaitable[Message]]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _asgi_refuse(send: Callable[[Message], Awaitable[None]]) -> None:
    body = f"at most {MAX_CLIENTS} hystrix.stream clients at once\n".encode()
    await send({"type": "http.response.start", "status": 503, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


_wsgi_clients = _Clients()


def hystrix_stream_wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """WSGI app for ``/hystrix.stream`` (it holds one worker thread per client while streaming)."""
    if not _wsgi_clients.enter():
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
        return iter([f"at most {MAX_CLIENTS} hystrix.stream clients at once\n".encode()])
    start_response("200 OK", list(HEADERS))
    return _WSGIStream()


class _WSGIStream:
    """The streamed body. ``close()``, which WSGI servers always call, gives the client's place back,
    even when nothing was sent yet (a generator's ``finally`` would not run then: the place would leak)."""

    def __init__(self) -> None:
        self._closed = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        while not self._closed.is_set():
            yield _frame(REGISTRY)
            self._closed.wait(TICK)

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            _wsgi_clients.leave()


class _Handler(BaseHTTPRequestHandler):
    clients = _Clients()
    registry: Registry = REGISTRY

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/hystrix.stream":
            self.send_error(404, "only /hystrix.stream here")
            return
        if not self.clients.enter():
            self.send_error(503, f"at most {MAX_CLIENTS} hystrix.stream clients at once")
            return
        try:
            self.send_response(200)
            for key, value in HEADERS:
                self.send_header(key, value)
            self.end_headers()
            closing = cast(_StreamServer, self.server).closing
            while not closing.is_set():
                self.wfile.write(_frame(self.registry))
                self.wfile.flush()
                closing.wait(TICK)
        except OSError:
            pass  # the client went away
        finally:
            self.clients.leave()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _StreamServer(ThreadingHTTPServer):
    """The thread server; ``shutdown()`` also ends the streams in progress, which never end by themselves."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self.closing = threading.Event()

    def shutdown(self) -> None:
        self.closing.set()
        super().shutdown()


def serve_hystrix_stream(port: int = 0, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Serve ``/hystrix.stream`` from a daemon thread; ``server.server_address`` has the port.

    Stop it with ``server.shutdown()`` (ends the streams too) and ``server.server_close()``.
    """
    server = _StreamServer((host, port), _Handler)
    threading.Thread(target=server.serve_forever, name="tracehouse-hystrix-stream", daemon=True).start()
    return server
