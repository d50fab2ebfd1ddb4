"""End to end across processes: a FastAPI service (``shop``) calls a Flask service (``stock``) through
httpx and requests and reads SQLite through SQLAlchemy; both are started by ``tracehouse-run`` and have
no tracing code. What they export is read back from a real ``tracehouse serve`` through its native API:
one trace linked across the processes with the instrumentations' span kinds and attributes; callers
that send only B3 headers, as Brave does, are continued, and every outgoing call carries W3C and B3;
log lines written while serving a request carry that request's ids.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.run_services import SHOP, STOCK, RunService, eventually, find_traces, start_run_service, trace_when
from tests.e2e.server import Server, start_server

pytestmark = pytest.mark.e2e

Span = dict[str, Any]
ITEM = "book"
CHECKOUT = "GET /checkout/{item}"
HTTPX, REQUESTS = "opentelemetry.instrumentation.httpx", "opentelemetry.instrumentation.requests"
#: The span id of the (untraced) caller in the B3 headers, and its parent as Brave sends it.
CALLER_SPAN, CALLER_PARENT = "a2fb4a1d1a96d312", "0020000000000001"


@dataclass(frozen=True)
class System:
    server: Server
    shop: RunService
    stock: RunService


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    tmp = tmp_path_factory.mktemp("interop")
    with ExitStack() as stack:
        server = start_server(tmp / "data")
        stack.callback(server.stop)
        stock = start_run_service("stock", server.otlp_http, STOCK)
        stack.callback(stock.stop)
        shop_args = ["--stock", stock.url, "--db", str(price_list(tmp / "shop.db"))]
        shop = start_run_service("shop", server.otlp_http, SHOP, shop_args)
        stack.callback(shop.stop)
        yield System(server, shop, stock)


def price_list(path: Path) -> Path:
    """The shop's SQLite database, made here with plain sqlite3 so that only the request's query is traced."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE items (name TEXT PRIMARY KEY, price REAL)")
        db.execute("INSERT INTO items VALUES (?, ?)", (ITEM, 12.5))
    return path


@pytest.fixture(scope="module")
def checkout(system: System) -> dict[str, Any]:
    """One checkout request, and its trace once both services' spans are stored."""
    answer = httpx.get(f"{system.shop.url}/checkout/{ITEM}", timeout=30)
    assert answer.status_code == 200, system.shop.text()
    assert answer.json() == {"item": ITEM, "price": 12.5, "stock": 7, "reservation": "r-1"}
    found = eventually(
        lambda: find_traces(system.server, service="shop", operation=CHECKOUT) or None, what="no checkout trace"
    )
    assert len(found) == 1, found
    return trace_when(system.server, found[0]["traceId"], lambda body: _complete(body["spans"], 2))


def _complete(spans: list[Span], served: int) -> bool:
    """Both processes' spans are in: ``served`` Server spans of ``stock``, their Client parents in ``shop``,
    and ``shop``'s Server span — it ends last, so its export may come after the others'."""
    stock = [s for s in spans if s["serviceName"] == "stock" and s["kind"] == "Server"]
    clients = {s["spanId"] for s in spans if s["serviceName"] == "shop" and s["kind"] == "Client"}
    root = any(s["serviceName"] == "shop" and s["kind"] == "Server" for s in spans)
    return root and len(stock) == served and all(s["parentSpanId"] in clients for s in stock)


# -- reading spans ------------------------------------------------------------------------------


def one(spans: Iterable[Span]) -> Span:
    found = list(spans)
    assert len(found) == 1, [(s["serviceName"], s["kind"], s["name"]) for s in found]
    return found[0]


def children(spans: list[Span], parent: Span) -> list[Span]:
    return [s for s in spans if s["parentSpanId"] == parent["spanId"]]


def client_of(spans: list[Span], scope: str) -> Span:
    return one(s for s in spans if s["kind"] == "Client" and s["scope"]["name"] == scope)


def attribute(span: Span, *names: str) -> str | None:
    """The first of ``names`` the span has: semantic-convention names changed between releases."""
    return next((span["attributes"][n] for n in names if n in span["attributes"]), None)


def http(span: Span) -> tuple[str | None, ...]:
    """(method, route, status code) of an HTTP server span; route None on a client span."""
    return (
        attribute(span, "http.request.method", "http.method"),
        attribute(span, "http.route"),
        attribute(span, "http.response.status_code", "http.status_code"),
    )


# -- one trace across processes -------------------------------------------------------------------


def test_one_trace_links_fastapi_sql_httpx_requests_and_flask(checkout: dict[str, Any]) -> None:
    spans = checkout["spans"]
    assert {s["traceId"] for s in spans} == {checkout["traceId"]}
    assert checkout["services"] == ["shop", "stock"]
    root = one(s for s in spans if s["parentSpanId"] is None)
    assert (root["serviceName"], root["kind"], root["name"]) == ("shop", "Server", CHECKOUT)
    assert http(root) == ("GET", "/checkout/{item}", "200")
    assert root["scope"]["name"] == "opentelemetry.instrumentation.fastapi"

    query = one(s for s in spans if s["attributes"].get("db.statement", "").startswith("SELECT price FROM items"))
    assert (query["serviceName"], query["kind"], query["parentSpanId"]) == ("shop", "Client", root["spanId"])
    assert attribute(query, "db.system.name", "db.system") == "sqlite"

    calls = [(HTTPX, "GET", "/stock/<item>", "200"), (REQUESTS, "POST", "/reservations", "201")]
    for scope, method, route, status in calls:
        call = client_of(spans, scope)
        assert (call["serviceName"], call["parentSpanId"]) == ("shop", root["spanId"])
        assert (attribute(call, "http.request.method", "http.method"), http(call)[2]) == (method, status)
        served = one(children(spans, call))
        assert (served["serviceName"], served["kind"], served["name"]) == ("stock", "Server", f"{method} {route}")
        assert http(served) == (method, route, status)
        assert served["scope"]["name"] == "opentelemetry.instrumentation.flask"


def test_each_process_is_its_own_instance(system: System, checkout: dict[str, Any]) -> None:
    resources = {s["serviceName"]: s["resource"] for s in checkout["spans"]}
    for service in (system.shop, system.stock):
        resource = resources[service.name]
        assert resource["service.name"] == service.name
        assert resource["process.pid"] == str(service.pid)
        assert resource["service.instance.id"] == f"{resource['host.name']}:{service.pid}"
    assert resources["shop"]["service.instance.id"] != resources["stock"]["service.instance.id"]


# -- B3 callers ---------------------------------------------------------------------------------------


def b3_single(trace_id: str) -> dict[str, str]:
    return {"b3": f"{trace_id}-{CALLER_SPAN}-1"}


def b3_multi(trace_id: str) -> dict[str, str]:
    return {
        "X-B3-TraceId": trace_id,
        "X-B3-SpanId": CALLER_SPAN,
        "X-B3-ParentSpanId": CALLER_PARENT,
        "X-B3-Sampled": "1",
    }


@pytest.mark.parametrize("trace_bits", [64, 128])
@pytest.mark.parametrize("headers", [b3_single, b3_multi], ids=["single", "multi"])
def test_a_b3_caller_is_continued_and_calls_carry_w3c_and_b3(
    system: System, headers: Callable[[str], dict[str, str]], trace_bits: int
) -> None:
    trace_id = secrets.token_hex(trace_bits // 8)
    answer = httpx.get(f"{system.shop.url}/relay", headers=headers(trace_id), timeout=30)
    assert answer.status_code == 200, system.shop.text()
    received: dict[str, dict[str, str]] = answer.json()

    # A 64-bit id is stored as the 128-bit one with zero high bits (as OpenTelemetry and Zipkin store it),
    # and sent in B3 in its 16 characters, as Brave sends it.
    full_id = trace_id.rjust(32, "0")
    spans = trace_when(system.server, trace_id, lambda body: _complete(body["spans"], 2))["spans"]
    assert {s["traceId"] for s in spans} == {full_id}
    root = one(s for s in spans if s["serviceName"] == "shop" and s["kind"] == "Server")
    assert (root["name"], root["parentSpanId"]) == ("GET /relay", CALLER_SPAN)

    for client, scope in (("httpx", HTTPX), ("requests", REQUESTS)):
        call = client_of(spans, scope)
        sent = received[client]
        assert sent["traceparent"] == f"00-{full_id}-{call['spanId']}-01"
        assert (sent["x-b3-traceid"], sent["x-b3-spanid"], sent["x-b3-sampled"]) == (trace_id, call["spanId"], "1")
        assert sent["x-b3-parentspanid"] == call["parentSpanId"]
        assert one(children(spans, call))["serviceName"] == "stock"


# -- log correlation ------------------------------------------------------------------------------------


def test_log_lines_of_a_request_carry_its_span_ids(system: System, checkout: dict[str, Any]) -> None:
    spans, trace_id = checkout["spans"], checkout["traceId"]
    root = one(s for s in spans if s["parentSpanId"] is None)
    served = one(children(spans, client_of(spans, HTTPX)))
    # Both services log with logging.basicConfig(); tracehouse-run alone puts the ids in.
    shop_line = f"INFO [shop,{trace_id},{root['spanId']}] shop: checkout of {ITEM}"
    stock_line = f"INFO [stock,{trace_id},{served['spanId']}] stock: stock of {ITEM}"
    assert system.shop.wait_for_line(lambda line: line == shop_line)
    assert system.stock.wait_for_line(lambda line: line == stock_line)
