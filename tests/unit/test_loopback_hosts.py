"""The DNS-rebinding guard, driven in process with the scopes a server hands it: on a loopback
address without a token only the loopback's names (and those allowed) are answered."""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping
from typing import Any

import pytest

from tracehouse.query.auth import ADMITTED
from tracehouse.query.hosts import ALLOWED_HOSTS_ENV, LoopbackHosts

Message = MutableMapping[str, Any]


async def _inner(scope: Message, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _status(
    host: str | None, server: tuple[str, int] = ("127.0.0.1", 16686), allowed: tuple[str, ...] = (), **scoped: Any
) -> tuple[int, str]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    headers = [] if host is None else [(b"host", host.encode())]
    scope: Message = {"type": "http", "path": "/", "headers": headers, "server": server, **scoped}
    asyncio.run(LoopbackHosts(_inner, allowed=allowed)(scope, receive, send))
    return sent[0]["status"], sent[1]["body"].decode()


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1:16686", "127.0.0.1", "localhost:16686", "LOCALHOST", "[::1]:16686", "[::1]", "localhost.:16686"],
)  # a final dot is the same name (review: localhost. got 421)
def test_the_loopbacks_names_are_answered(host: str) -> None:
    assert _status(host)[0] == 200


@pytest.mark.parametrize("host", ["rebind.attacker.example:16686", "rebind.attacker.example", "127.0.0.1.nip.io"])
def test_another_name_on_loopback_is_refused_saying_how_to_allow_it(host: str) -> None:
    status, body = _status(host)
    assert status == 421
    message = json.loads(body)["error"]["message"]
    assert ALLOWED_HOSTS_ENV in message
    assert "--api-token" in message


def test_the_address_it_listens_on_is_a_name_of_its_own() -> None:
    assert _status("127.0.0.5:16686", server=("127.0.0.5", 16686))[0] == 200
    assert _status("[::1]:16686", server=("::1", 16686))[0] == 200
    assert _status("evil.example", server=("::1", 16686))[0] == 421


def test_requests_on_other_addresses_and_without_host_are_left_alone() -> None:
    assert _status("tracehouse.example", server=("10.0.0.5", 16686))[0] == 200
    assert _status("tracehouse.example", server=("testserver", 80))[0] == 200
    assert _status(None)[0] == 200


def test_a_request_the_token_admitted_is_left_alone() -> None:
    assert _status("tracehouse.example", **{ADMITTED: True})[0] == 200


def test_names_the_operator_allowed_are_answered() -> None:
    assert _status("tracehouse.lan:8080", allowed=("Tracehouse.LAN",))[0] == 200
    assert _status("other.lan", allowed=("tracehouse.lan",))[0] == 421
    assert _status("anything.example", allowed=("*",))[0] == 200
