"""A fixed data set for the golden API answers: ids, times and attributes never change, so
every answer computed from it can be compared byte for byte with a file in snapshots/api/.

Three traces, 10:00–10:05 UTC on 2026-11-01, across gateway → orders → payments (+ a SQLite
call and a queue producer), one of them failing in payments, and a worker consuming the queue;
written as two batches so that a link across insert batches is part of every graph answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from tracehouse.storage import SpanBatch

#: 2026-11-01T10:00:00Z in ns.
T0 = 1_793_527_200 * 10**9
MS = 10**6
#: A range holding every span, and the minute grid the linker and RED use.
START_NS = T0 - 60 * 10**9
END_NS = T0 + 10 * 60 * 10**9


@dataclass(frozen=True, slots=True)
class GoldenSpan:
    trace: int
    span: int
    parent: int  # 0: root
    service: str
    name: str
    kind: str
    start_ms: int  # from T0
    duration_ms: int
    attributes: tuple[tuple[str, str], ...] = ()
    error: str = ""


QUEUE = (("messaging.system", "sqlite-queue"), ("messaging.destination.name", "orders"))


def trace_id(trace: int) -> str:
    return f"{trace:032x}".replace("0", "a", 2)


def span_id(trace: int, span: int) -> str:
    return f"{trace:08x}{span:08x}"


def _trace(trace: int, at_ms: int, fail: bool) -> list[GoldenSpan]:
    http = (("http.request.method", "POST"), ("http.route", "/orders"))
    pay_error = "card declined" if fail else ""
    return [
        GoldenSpan(trace, 1, 0, "gateway", "POST /orders", "Server", at_ms, 120,
                   (*http, ("http.response.status_code", "502" if fail else "200")), pay_error),
        GoldenSpan(trace, 2, 1, "gateway", "POST", "Client", at_ms + 5, 110, (("server.address", "orders"),)),
        GoldenSpan(trace, 3, 2, "orders", "POST /orders", "Server", at_ms + 8, 100, http),
        GoldenSpan(trace, 4, 3, "orders", "SELECT stock", "Client", at_ms + 10, 12,
                   (("db.system", "sqlite"), ("db.name", "orders.db"))),
        # A queue named like its service: another node of the graph.
        GoldenSpan(trace, 5, 3, "orders", "orders publish", "Producer", at_ms + 25, 3,
                   QUEUE),
        GoldenSpan(trace, 6, 3, "orders", "POST", "Client", at_ms + 30, 70,
                   (("server.address", "payments"),), pay_error),
        GoldenSpan(trace, 7, 6, "payments", "POST /charge", "Server", at_ms + 33, 60,
                   (("http.route", "/charge"), ("card.brand", "visa" if trace % 2 else "amex")), pay_error),
    ]  # fmt: skip


SPANS = [
    *_trace(1, 0, False),
    *_trace(2, 60_000, True),
    *_trace(3, 180_000, False),
    # The worker consumes the queue: once as the producer's child, once in a trace of its own
    # (linking the producer, as the messaging conventions advise).
    GoldenSpan(1, 8, 5, "worker", "orders process", "Consumer", 40, 20, QUEUE),
    GoldenSpan(4, 1, 0, "worker", "orders process", "Consumer", 190_000, 25, QUEUE),
]


def batches() -> list[SpanBatch]:
    """The data set as two insert batches: the payments and worker spans arrive separately."""
    first = _batch([s for s in SPANS if s.service not in ("payments", "worker")], "golden-1")
    second = _batch([s for s in SPANS if s.service in ("payments", "worker")], "golden-2")
    return [first, second]


def _batch(spans: list[GoldenSpan], token: str) -> SpanBatch:
    batch = SpanBatch(token=token)
    for s in spans:
        start = T0 + s.start_ms * MS
        batch.timestamp_ns.append(start)
        batch.trace_id.append(trace_id(s.trace))
        batch.span_id.append(span_id(s.trace, s.span))
        batch.parent_span_id.append(span_id(s.trace, s.parent) if s.parent else "")
        batch.trace_state.append("")
        batch.span_name.append(s.name)
        batch.span_kind.append(s.kind)
        batch.service_name.append(s.service)
        batch.resource_attributes.append({"service.name": s.service, "service.instance.id": f"{s.service}-1"})
        batch.scope_name.append("golden")
        batch.scope_version.append("1")
        batch.span_attributes.append(dict(s.attributes))
        batch.duration_ns.append(s.duration_ms * MS)
        batch.status_code.append("Error" if s.error else "Unset")
        batch.status_message.append(s.error)
        batch.event_timestamp_ns.append([start + MS] if s.error else [])
        batch.event_name.append(["exception"] if s.error else [])
        batch.event_attributes.append([{"exception.message": s.error}] if s.error else [])
        batch.link_trace_id.append([])
        batch.link_span_id.append([])
        batch.link_trace_state.append([])
        batch.link_attributes.append([])
    return batch
