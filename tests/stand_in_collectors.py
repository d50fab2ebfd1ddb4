"""Stand-in collectors for the instrumentation's tests: a thing we run on loopback in place of
`tracehouse serve` when the test is about what the exporter does when the collector answers one way
(always 200, always 503), not at all (nothing listens), or never (accepts and stalls)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

__all__ = ["Collector", "down_collector", "http_collector", "stalling_collector"]


@dataclass
class Collector:
    """A stand-in collector; `contacts` counts the connections or requests it saw."""

    url: str
    contacts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def seen(self) -> None:
        with self.lock:
            self.contacts += 1


@contextmanager
def http_collector(status: int, delay_s: float = 0.0) -> Iterator[Collector]:
    """Answers every POST with `status` (200: an empty OTLP answer; else Retry-After: 1), after
    `delay_s` (a slow link or a busy collector)."""
    collector = Collector("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            collector.seen()
            self.rfile.read(int(self.headers.get("content-length", "0")))
            time.sleep(delay_s)
            body = ExportTraceServiceResponse().SerializeToString() if status == 200 else b"busy"
            self.send_response(status)
            if status != 200:
                self.send_header("retry-after", "1")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    collector.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="stand-in-collector")
    thread.start()
    try:
        yield collector
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@contextmanager
def down_collector() -> Iterator[Collector]:
    """A port that is bound but does not listen: every connection is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield Collector(f"http://127.0.0.1:{sock.getsockname()[1]}")


@contextmanager
def stalling_collector() -> Iterator[Collector]:
    """Accepts every connection and never reads or answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    collector = Collector(f"http://127.0.0.1:{listener.getsockname()[1]}")
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return  # the listener was closed
            collector.seen()

    thread = threading.Thread(target=accept, name="stalling-collector")
    thread.start()
    try:
        yield collector
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(10)
        for sock in held:
            sock.close()
