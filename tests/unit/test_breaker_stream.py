"""A service's own ``/hystrix.stream``: the real thread server on loopback read with http.client, the
ASGI app (called directly and under a real uvicorn server) and the WSGI app. Frames are parsed and
validated; the sixth concurrent client gets 503 and a departed client's place is given back."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from tests.unit.conftest import FakeClock
from tests.unit.test_breaker_hystrix import COMMAND, check_fields
from tracehouse.instrumentation.breakers import REGISTRY, CircuitBreaker
from tracehouse.instrumentation.breakers.stream import (
    MAX_CLIENTS,
    HystrixStreamASGI,
    hystrix_stream_wsgi,
    serve_hystrix_stream,
)

pytestmark = pytest.mark.usefixtures("clean_breakers")


@pytest.fixture
def port() -> Iterator[int]:
    server = serve_hystrix_stream(0)
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()  # ends the streams still open, so server_close can join their threads
        server.server_close()


@pytest.fixture
def demo(fake_clock: FakeClock) -> CircuitBreaker:
    """A registered breaker with 3 successes and 1 failure in its window."""
    b = CircuitBreaker("catalog.lookup", fallback=lambda: None)
    for _ in range(3):
        b.call(lambda: fake_clock.elapse(0.012))
    b.call(lambda: 1 / 0)
    return b


def open_stream(stack: ExitStack, port: int, path: str = "/hystrix.stream") -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    stack.callback(connection.close)
    connection.request("GET", path)
    response = connection.getresponse()
    stack.callback(response.close)
    return response


def next_event(lines: Iterator[bytes], name: str) -> dict[str, Any]:
    """The next ``data:`` event of ``name`` in an event stream (within a few frames)."""
    for _ in range(100):
        line = next(lines)
        if line.startswith(b"data: "):
            assert line.endswith(b"\n")
            event = json.loads(line.removeprefix(b"data: "))
            if event["name"] == name:
                assert next(lines) == b"\n"
                return event
    raise AssertionError(f"no event of {name} in the stream")


def response_lines(response: http.client.HTTPResponse) -> Iterator[bytes]:
    while line := response.readline():
        yield line
    raise AssertionError("the stream ended")


def check_demo_event(event: dict[str, Any]) -> None:
    check_fields(event, COMMAND)
    assert event["type"] == "HystrixCommand"
    assert (event["name"], event["group"]) == ("catalog.lookup", "catalog")
    assert (event["rollingCountSuccess"], event["rollingCountFailure"], event["rollingCountFallbackSuccess"]) == (
        3,
        1,
        1,
    )
    assert (event["requestCount"], event["errorCount"], event["errorPercentage"]) == (4, 1, 25)
    assert event["isCircuitBreakerOpen"] is False
    assert event["reportingHosts"] == 1


def test_thread_server_streams_hystrix_events(port: int, demo: CircuitBreaker) -> None:
    with ExitStack() as stack:
        response = open_stream(stack, port)
        assert response.status == 200
        assert response.getheader("Content-Type") == "text/event-stream;charset=UTF-8"
        assert "no-cache" in (response.getheader("Cache-Control") or "")
        check_demo_event(next_event(response_lines(response), "catalog.lookup"))


def test_thread_server_pings_when_there_is_no_breaker(port: int) -> None:
    assert not REGISTRY.breakers()
    with ExitStack() as stack:
        response = open_stream(stack, port)
        assert response.status == 200
        assert response.readline() == b"ping: \n"
        assert response.readline() == b"\n"


def test_thread_server_answers_404_elsewhere(port: int) -> None:
    with ExitStack() as stack:
        response = open_stream(stack, port, "/metrics")
        assert response.status == 404
        response.read()


def test_thread_server_refuses_a_sixth_client_and_frees_places(demo: CircuitBreaker) -> None:
    for _ in range(2):  # the second server finds every place free again
        server = serve_hystrix_stream(0)
        try:
            with ExitStack() as stack:
                streams = [open_stream(stack, server.server_address[1]) for _ in range(MAX_CLIENTS)]
                assert [s.status for s in streams] == [200] * MAX_CLIENTS
                sixth = open_stream(stack, server.server_address[1])
                assert sixth.status == 503
                assert b"at most 5 hystrix.stream clients" in sixth.read()
                for stream in streams:  # each of the five is served
                    check_demo_event(next_event(response_lines(stream), "catalog.lookup"))
        finally:
            server.shutdown()
            server.server_close()


def test_shutdown_ends_the_streams_in_progress(demo: CircuitBreaker) -> None:
    server = serve_hystrix_stream(0)
    with ExitStack() as stack:
        response = open_stream(stack, server.server_address[1])
        check_demo_event(next_event(response_lines(response), "catalog.lookup"))
        stopper = threading.Thread(target=lambda: (server.shutdown(), server.server_close()))
        stopper.start()
        stopper.join(30)
        assert not stopper.is_alive(), "shutdown waited for a client that never leaves"
        while response.readline():  # the server closed the stream: the client reads to its end
            pass


# -- ASGI ---------------------------------------------------------------------------------------


class ASGIClient:
    """One request to an ASGI app: records what it sends, disconnects when told."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.gone = asyncio.Event()
        self.first_body = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Any) -> None:
        self.messages.append(dict(message))
        if message["type"] == "http.response.body":
            self.first_body.set()

    @property
    def status(self) -> int:
        return int(self.messages[0]["status"])

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])


def test_asgi_app_streams_and_refuses_a_sixth_client(demo: CircuitBreaker) -> None:
    app = HystrixStreamASGI(REGISTRY)

    async def scenario() -> list[ASGIClient]:
        clients = [ASGIClient() for _ in range(MAX_CLIENTS + 1)]
        tasks = [asyncio.ensure_future(app({"type": "http"}, c.receive, c.send)) for c in clients[:MAX_CLIENTS]]
        for client in clients[:MAX_CLIENTS]:
            await asyncio.wait_for(client.first_body.wait(), 30)
        await asyncio.wait_for(app({"type": "http"}, clients[-1].receive, clients[-1].send), 30)
        for client in clients[:MAX_CLIENTS]:
            client.gone.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        # Every place was given back: a new client is served.
        late = ASGIClient()
        task = asyncio.ensure_future(app({"type": "http"}, late.receive, late.send))
        await asyncio.wait_for(late.first_body.wait(), 30)
        late.gone.set()
        await asyncio.wait_for(task, 30)
        return [*clients, late]

    clients = asyncio.run(scenario())
    *served, sixth, late = clients
    assert [c.status for c in served] == [200] * MAX_CLIENTS
    assert (sixth.status, late.status) == (503, 200)
    assert b"at most 5" in sixth.body
    headers = dict(served[0].messages[0]["headers"])
    assert headers[b"content-type"] == b"text/event-stream;charset=UTF-8"
    check_demo_event(next_event(iter(served[0].body.splitlines(keepends=True)), "catalog.lookup"))


def test_asgi_app_under_uvicorn(demo: CircuitBreaker) -> None:
    uvicorn = pytest.importorskip("uvicorn")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    config = uvicorn.Config(
        HystrixStreamASGI(REGISTRY), lifespan="off", ws="none", log_level="warning", timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]})
    thread.start()
    try:
        with ExitStack() as stack:
            response = open_stream(stack, port)  # waits in the listen backlog until uvicorn serves it
            assert response.status == 200
            assert response.getheader("content-type") == "text/event-stream;charset=UTF-8"
            check_demo_event(next_event(response_lines(response), "catalog.lookup"))
    finally:
        server.should_exit = True
        thread.join(30)
        listener.close()
    assert not thread.is_alive()


# -- WSGI ---------------------------------------------------------------------------------------


def test_wsgi_app_streams_refuses_a_sixth_and_frees_places_on_close(demo: CircuitBreaker) -> None:
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        statuses.append(status)
        if status.startswith("200"):
            assert ("Content-Type", "text/event-stream;charset=UTF-8") in headers

    bodies = [hystrix_stream_wsgi({}, start_response) for _ in range(MAX_CLIENTS)]
    refused = hystrix_stream_wsgi({}, start_response)
    assert statuses == ["200 OK"] * MAX_CLIENTS + ["503 Service Unavailable"]
    assert b"at most 5" in b"".join(refused)
    frames = iter(bodies[0])
    check_demo_event(next_event(iter(next(frames).splitlines(keepends=True)), "catalog.lookup"))
    # A WSGI server closes the body when the client leaves, even one it never iterated.
    for body in bodies:
        body.close()  # type: ignore[attr-defined]
    statuses.clear()
    again = [hystrix_stream_wsgi({}, start_response) for _ in range(MAX_CLIENTS)]
    assert statuses == ["200 OK"] * MAX_CLIENTS
    for body in again:
        body.close()  # type: ignore[attr-defined]
