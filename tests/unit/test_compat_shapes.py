"""Edge cases of the Zipkin and Jaeger span shapes that stored data can reach."""

from __future__ import annotations

from tracehouse.query.jaeger_api import jaeger_trace
from tracehouse.query.zipkin_api import zipkin_span
from tracehouse.storage import Span

TRACE = "463ac35c9f6413ad463ac35c9f6413ad"


def _span(span_id: str, kind: str, parent: str = "", **attributes: str) -> Span:
    return Span(0, TRACE, span_id, parent, "", "op", kind, "svc", {}, "", "", attributes, 1000, "Unset", "", (), ())


def test_the_deduper_wraps_past_the_largest_span_id() -> None:
    """A shared RPC whose id is the largest 64-bit one: the server half's new id wraps round to
    the smallest free one, never the zero id nor a duplicate."""
    top = "ffffffffffffffff"
    spans = [_span(top, "Client"), _span(top, "Server"), _span("0000000000000001", "Internal", top)]
    ids = [(s["spanID"], [r["spanID"] for r in s["references"]]) for s in jaeger_trace(TRACE, spans)["spans"]]
    assert ids == [(top, []), ("0000000000000002", [top]), ("0000000000000001", ["0000000000000002"])]


def test_a_port_that_is_not_ascii_digits_is_left_out() -> None:
    """str.isdigit() holds for '²', which int() refuses: the trace read answered 500."""
    span = _span("0000000000000001", "Client", **{"network.peer.address": "10.0.0.1", "network.peer.port": "²"})
    assert zipkin_span(span)["remoteEndpoint"] == {"ipv4": "10.0.0.1"}
