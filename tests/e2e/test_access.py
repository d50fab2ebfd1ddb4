"""Tokens on a real server: with --api-token every API route, the dashboard and /turbine.stream
refuse a request without it (401, no data in the body); with --ingest-token so does every ingest
route, breaker stats included. Without a token, on loopback, a request naming another host (a
DNS-rebinding web page) is refused (421) unless the operator allowed the name."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import Server, start_server
from tracehouse.query.hosts import ALLOWED_HOSTS_ENV

pytestmark = pytest.mark.e2e
API_TOKEN = "api-secret-123"
INGEST_TOKEN = "ingest-secret-456"
ALLOWED = "tracehouse.lan"
PATHS = ["/api/v1/services", "/api/v1/traces", "/api/v1/breakers", "/api/v2/services", "/api/services",
         "/turbine.stream?cluster=x", "/", "/map", "/healthz", "/docs", "/openapi.json"]  # fmt: skip


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data: Path = tmp_path_factory.mktemp("access")
    running = start_server(data, "--api-token", API_TOKEN, "--ingest-token", INGEST_TOKEN)
    yield running
    running.stop()


@pytest.mark.parametrize("path", PATHS)
def test_every_read_route_refuses_without_the_token(guarded: Server, path: str) -> None:
    for headers in ({}, {"authorization": "Bearer wrong-token"}, {"cookie": "tracehouse_token=nope"}):
        answer = httpx.get(guarded.ui + path, headers=headers, timeout=10)
        assert answer.status_code == 401, (path, headers)
        assert answer.json()["error"]["status"] == 401
        assert API_TOKEN not in answer.text


@pytest.mark.parametrize("path", ["/api/v2/services", "/api/v2/traces", "/api/v2/trace/463ac35c9f6413ad"])
def test_zipkins_read_api_on_the_zipkin_port_needs_the_api_token(guarded: Server, path: str) -> None:
    """A Zipkin server answers its read API on 9411 too, and so does serve: behind the API token
    like the UI port, not open to whoever may post spans (nor the ingest token)."""
    zipkin = guarded.zipkin.removesuffix("/api/v2/spans")
    for headers in ({}, {"authorization": f"Bearer {INGEST_TOKEN}"}):
        answer = httpx.get(zipkin + path, headers=headers, timeout=10)
        assert answer.status_code == 401, (path, headers)
        assert API_TOKEN not in answer.text
    opened = httpx.get(zipkin + path, headers={"authorization": f"Bearer {API_TOKEN}"}, timeout=10)
    assert opened.status_code in (200, 404), opened.text
    if opened.status_code == 404:  # the trace: unknown, as Zipkin says it
        assert "not found" in opened.text


@pytest.mark.parametrize(
    ("path", "complaint"),
    [("/api/v2/trace/zz", "zz"), ("/api/v2/traceMany?traceIds=463ac35c9f6413ad", "traceIds"),
     ("/api/v2/spans", "serviceName"), ("/api/v2/dependencies", "endTs"), ("/api/v2/traces?limit=0", "limit")],
)  # fmt: skip
def test_zipkins_read_api_on_the_zipkin_port_answers_bad_requests_with_400(
    guarded: Server, path: str, complaint: str
) -> None:
    """The same 400 naming the parameter as on the UI port, not a 500 or FastAPI's own 422."""
    zipkin = guarded.zipkin.removesuffix("/api/v2/spans")
    for base in (zipkin, guarded.ui):
        answer = httpx.get(base + path, headers={"authorization": f"Bearer {API_TOKEN}"}, timeout=10)
        assert answer.status_code == 400, (base, path, answer.text)
        assert complaint in answer.text, answer.text


def test_the_token_opens_the_api_and_a_browser_gets_a_cookie(guarded: Server) -> None:
    bearer = {"authorization": f"Bearer {API_TOKEN}"}
    assert httpx.get(f"{guarded.ui}/api/v1/services", headers=bearer, timeout=10).status_code == 200
    first = httpx.get(f"{guarded.ui}/map?lookback=1h&token={API_TOKEN}", timeout=10)
    assert first.status_code == 303
    assert first.headers["location"] == "/map?lookback=1h"
    assert "HttpOnly" in first.headers["set-cookie"]
    page = httpx.get(f"{guarded.ui}/map", cookies={"tracehouse_token": API_TOKEN}, timeout=10)
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]


def test_every_ingest_route_refuses_without_the_ingest_token(guarded: Server) -> None:
    base = guarded.otlp_http.removesuffix("/v1/traces")
    for url, headers, body in [
        (f"{base}/v1/traces", {"content-type": "application/json"}, b"{}"),
        (f"{base}/v1/breakers", {"content-type": "application/json"}, b"{}"),
        (f"{guarded.zipkin.removesuffix('/api/v2/spans')}/api/v2/spans", {"content-type": "application/json"}, b"[]"),
    ]:
        answer = httpx.post(url, content=body, headers=headers, timeout=10)
        assert answer.status_code == 401, url
        assert INGEST_TOKEN not in answer.text
        ok = httpx.post(url, content=body, headers={**headers, "authorization": f"Bearer {INGEST_TOKEN}"}, timeout=10)
        assert ok.status_code != 401, url


def test_the_dashboard_reads_its_api_with_the_token(guarded: Server) -> None:
    """The dashboard's own server-side API calls carry the token: a page renders data, not a 401."""
    cookies = {"tracehouse_token": API_TOKEN}
    layout = httpx.post(
        f"{guarded.ui}/_dash-update-component",
        cookies=cookies,
        json={
            "output": "page.children",
            "outputs": {"id": "page", "property": "children"},
            "inputs": [
                {"id": "url", "property": "pathname", "value": "/breakers"},
                {"id": "url", "property": "search", "value": ""},
            ],
            "changedPropIds": ["url.pathname"],
            "state": [],
        },
        timeout=30,
    )
    assert layout.status_code == 200, layout.text[:300]
    assert "401" not in layout.text


@pytest.fixture(scope="module")
def open_on_loopback(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """No token, on 127.0.0.1 (the default), one extra name allowed through the environment."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ALLOWED_HOSTS_ENV, ALLOWED)
        running = start_server(tmp_path_factory.mktemp("open"))
    yield running
    running.stop()


def _with_host(url: str, host: str) -> tuple[int, str]:
    """Status and (of a refusal) body: /turbine.stream's 200 never ends, so it is not read."""
    with httpx.stream("GET", url, headers={"host": host}, timeout=10) as answer:
        return answer.status_code, "" if answer.status_code == 200 else answer.read().decode()


@pytest.mark.parametrize("path", PATHS)
def test_without_a_token_a_foreign_host_on_loopback_is_refused(open_on_loopback: Server, path: str) -> None:
    """What a DNS-rebinding page's requests look like: the page's name in Host (it read 200)."""
    port = open_on_loopback.ui.rsplit(":", 1)[1]
    status, body = _with_host(open_on_loopback.ui + path, f"rebind.attacker.example:{port}")
    assert status == 421, (path, body[:200])
    assert ALLOWED_HOSTS_ENV in json.loads(body)["error"]["message"]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"{ALLOWED}:{port}"):
        assert _with_host(open_on_loopback.ui + path, host)[0] == 200, (path, host)


def test_without_a_token_zipkins_read_api_refuses_a_foreign_host_too(open_on_loopback: Server) -> None:
    zipkin = open_on_loopback.zipkin.removesuffix("/api/v2/spans")
    assert _with_host(f"{zipkin}/api/v2/services", "rebind.attacker.example")[0] == 421
    assert _with_host(f"{zipkin}/api/v2/services", "localhost")[0] == 200


def test_without_a_token_the_dashboard_reads_its_api_on_loopback(open_on_loopback: Server) -> None:
    """The dashboard's server-side calls to its own API name 127.0.0.1: a page renders, not a 421."""
    page = httpx.post(
        f"{open_on_loopback.ui}/_dash-update-component",
        json={
            "output": "page.children",
            "outputs": {"id": "page", "property": "children"},
            "inputs": [
                {"id": "url", "property": "pathname", "value": "/"},
                {"id": "url", "property": "search", "value": "?lookback=1h"},
            ],
            "changedPropIds": ["url.pathname"],
            "state": [],
        },
        timeout=30,
    )
    assert page.status_code == 200, page.text[:300]
    assert "421" not in page.text
    assert "search-problem" not in page.text
