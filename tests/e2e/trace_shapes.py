"""Traces of a known shape as OTLP/JSON requests (what an SDK's OTLP/HTTP JSON exporter posts):
a small shop trace with every feature the trace page shows (errors with an exception, clock skew,
a link, several services), and a wide generated trace of any size (10,000 spans for the page's
scale test and benchmark). Built without the code under test."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

SERVER, CLIENT, INTERNAL = 2, 3, 1  # OTLP SpanKind
ERROR = 2  # OTLP StatusCode
MS = 1_000_000
STACKTRACE = (
    "Traceback (most recent call last):\n"
    '  File "payments/api.py", line 41, in charge\n'
    "    gateway.charge(card, amount)\n"
    '  File "payments/gateway.py", line 88, in charge\n'
    "    raise CardDeclined(reply.reason)\n"
    "payments.gateway.CardDeclined: card declined"
)


@dataclass
class SpanSpec:
    service: str
    name: str
    start_ns: int
    end_ns: int
    parent: SpanSpec | None = None
    kind: int = INTERNAL
    attributes: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    events: list[tuple[int, str, dict[str, str]]] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)
    span_id: str = field(default_factory=lambda: os.urandom(8).hex())


@dataclass
class TraceShape:
    trace_id: str
    spans: list[SpanSpec]

    def by_name(self, name: str) -> SpanSpec:
        return next(s for s in self.spans if s.name == name)


def shop_trace() -> TraceShape:
    """Ten spans in three services, all but ``load profile`` on the critical path.
    ``POST place-order``'s subtree (3 spans) was measured on a clock a second ahead, so the API
    moves it back inside its parent with a warning; payments fails with an exception; ``render``
    links to another trace."""
    t0 = time.time_ns() - 5_000 * MS

    def at(ms: float) -> int:
        return t0 + int(ms * MS)

    root = SpanSpec(
        "frontend", "GET /checkout", at(0), at(100), kind=SERVER,
        attributes={"http.method": "GET", "http.route": "/checkout", "http.status_code": "200"},
    )  # fmt: skip
    charge = SpanSpec(
        "frontend", "POST charge", at(10), at(40), root, CLIENT, {"peer.service": "payments"},
        error="payments answered 402",
    )  # fmt: skip
    exception = {
        "exception.type": "payments.gateway.CardDeclined",
        "exception.message": "card declined",
        "exception.stacktrace": STACKTRACE,
    }
    payment = SpanSpec(
        "payments", "Charge", at(12), at(38), charge, SERVER, {"card.brand": "visa"}, error="card declined",
        events=[(at(30), "exception", exception)],
    )  # fmt: skip
    profile = SpanSpec("frontend", "load profile", at(12), at(30), root)  # hidden by charge: off the critical path
    order = SpanSpec("frontend", "POST place-order", at(45), at(95), root, CLIENT, {"peer.service": "checkout"})
    skew = 1_000  # ms: checkout's clock
    place = SpanSpec(
        "checkout", "PlaceOrder", at(skew + 48), at(skew + 92), order, SERVER, {"order.id": "A-1042"},
        events=[(at(skew + 50), "order validated", {"items": "3"})],
    )  # fmt: skip
    reserve = SpanSpec("checkout", "reserve stock", at(skew + 50), at(skew + 60), place, INTERNAL, {"items": "3"})
    insert = SpanSpec(
        "checkout", "INSERT orders", at(skew + 60), at(skew + 90), place, CLIENT,
        {"db.system": "postgresql", "db.statement": "INSERT INTO orders VALUES ($1, $2)"},
    )  # fmt: skip
    linked = os.urandom(16).hex(), os.urandom(8).hex()
    render = SpanSpec("frontend", "render", at(95), at(99), root, INTERNAL, {"template": "done.html"}, links=[linked])
    tail = SpanSpec("frontend", "audit", at(96), at(97), render)
    spans = [root, charge, payment, profile, order, place, reserve, insert, render, tail]
    return TraceShape(os.urandom(16).hex(), spans)


def wide_trace(spans: int, seed: int = 7) -> TraceShape:
    """``spans`` spans in 12 services, each parent with 1–8 children (called at once or one after
    another) inside its time, breadth first, so the tree is a few levels deep and very wide (like a
    fan-out batch job). About one span in a hundred fails with an exception."""
    rng = random.Random(seed)
    services = [f"service-{i:02}" for i in range(12)]
    t0 = time.time_ns() - 60_000 * MS
    root = SpanSpec("service-00", "POST /batch", t0, t0 + 30_000 * MS, kind=SERVER, attributes={"batch.size": "all"})
    made, frontier, index = [root], [root], 0
    while len(made) < spans:
        parent = frontier[index]
        index += 1
        children = min(rng.randint(1, 8), spans - len(made))
        parallel = rng.random() < 0.5  # fan out at once, or one call after another
        slot = (parent.end_ns - parent.start_ns) // (1 if parallel else children)
        for n in range(children):
            start = parent.start_ns + (0 if parallel else n * slot) + rng.randrange(max(slot // 10, 1))
            length = max(slot * rng.randint(20, 85) // 100, 1_000)
            service = parent.service if rng.random() < 0.4 else rng.choice(services)
            kind = INTERNAL if service == parent.service else SERVER
            child = SpanSpec(service, f"op-{rng.randrange(40):02} #{len(made)}", start, start + length, parent, kind,
                             {"index": str(len(made)), "shard": f"shard-{rng.randrange(64)}",
                              "http.route": f"/items/{rng.randrange(1000)}"})  # fmt: skip
            if rng.random() < 0.01:
                child.error = "upstream failed"
                child.events.append((start, "exception", {"exception.type": "TimeoutError", "exception.message": "x"}))
            made.append(child)
            frontier.append(child)
    return TraceShape(os.urandom(16).hex(), made)


def requests(shape: TraceShape, per_request: int = 2_000) -> Iterator[dict[str, Any]]:
    """OTLP/JSON ``ExportTraceServiceRequest`` bodies of at most ``per_request`` spans each."""
    for i in range(0, len(shape.spans), per_request):
        by_service: dict[str, list[dict[str, Any]]] = {}
        for span in shape.spans[i : i + per_request]:
            by_service.setdefault(span.service, []).append(_span_json(shape.trace_id, span))
        yield {
            "resourceSpans": [
                {
                    "resource": {"attributes": _attributes({"service.name": name, "host.name": f"{name}-0"})},
                    "scopeSpans": [{"scope": {"name": "trace_shapes", "version": "1.0"}, "spans": spans}],
                }
                for name, spans in by_service.items()
            ]
        }


def send(otlp_http: str, shape: TraceShape) -> str:
    """Post the trace to a collector's OTLP/HTTP endpoint; returns once every span is stored."""
    for body in requests(shape):
        answer = httpx.post(f"{otlp_http}/v1/traces", json=body, timeout=60)
        assert answer.status_code == 200, answer.text
        assert "rejected" not in answer.text.lower(), answer.text
    return shape.trace_id


def _span_json(trace_id: str, span: SpanSpec) -> dict[str, Any]:
    body: dict[str, Any] = {
        "traceId": trace_id,
        "spanId": span.span_id,
        "name": span.name,
        "kind": span.kind,
        "startTimeUnixNano": str(span.start_ns),
        "endTimeUnixNano": str(span.end_ns),
        "attributes": _attributes(span.attributes),
        "events": [
            {"timeUnixNano": str(t), "name": name, "attributes": _attributes(attrs)} for t, name, attrs in span.events
        ],
        "links": [
            {"traceId": t, "spanId": s, "attributes": _attributes({"link.kind": "follows"})} for t, s in span.links
        ],
    }
    if span.parent is not None:
        body["parentSpanId"] = span.parent.span_id
    if span.error is not None:
        body["status"] = {"code": ERROR, "message": span.error}
    return body


def _attributes(values: dict[str, str]) -> list[dict[str, Any]]:
    return [{"key": key, "value": {"stringValue": value}} for key, value in values.items()]
