"""The trace page's server side: one layout whatever the size of the trace (the browser draws the
rows), the API's JSON handed over untouched, the summary line, colours (the browser test covers
everything the page does with them)."""

from __future__ import annotations

from typing import Any, cast

from dash.development.base_component import Component

from tracehouse.dashboard.colours import ERROR_COLOUR, service_colours
from tracehouse.dashboard.pages.trace import ASSETS, ASSETS_DIR, page, summary
from tracehouse.query.client import TraceJson


def trace_json(spans: int, *, truncated: bool = False) -> TraceJson:
    def span(i: int) -> dict[str, Any]:
        return {
            "traceId": "ab" * 16, "spanId": f"{i:016x}", "parentSpanId": None if i == 0 else f"{0:016x}",
            "depth": 0 if i == 0 else 1, "name": f"op {i}", "kind": "Server", "serviceName": f"svc-{i % 3}",
            "startTimeUnixNano": str(1_764_000_000_000_000_000 + i), "durationNano": 1_000_000,
            "status": {"code": "Error" if i == 1 else "Unset", "message": ""}, "attributes": {}, "resource": {},
            "events": [], "links": [], "warnings": [], "onCriticalPath": i == 0,
        }  # fmt: skip

    body = {
        "traceId": "ab" * 16, "startTimeUnixNano": "1764000000000000000", "durationNano": 2_500_000,
        "spanCount": spans, "services": sorted({f"svc-{i % 3}" for i in range(spans)}),
        "spans": [span(i) for i in range(spans)], "criticalPath": [],
    }  # fmt: skip
    if truncated:
        body["truncated"] = True
    return cast(TraceJson, body)


def components(node: Any) -> list[Component]:
    if isinstance(node, list | tuple):
        return [c for child in node for c in components(child)]
    if not isinstance(node, Component):
        return []
    return [node, *components(getattr(node, "children", None))]


def test_the_layout_does_not_grow_with_the_trace() -> None:
    small, large = page("x", trace_json(3)), page("x", trace_json(5_000))
    assert len(components(small)) == len(components(large))


def test_the_store_holds_the_apis_trace_and_the_legends_colours() -> None:
    trace = trace_json(5)
    (store,) = [c for c in components(page("x", trace)) if getattr(c, "id", None) == "trace-data"]
    assert store.data == {"trace": trace, "colours": service_colours(trace["services"])}


def test_summary_and_truncation_notice() -> None:
    assert summary(trace_json(10_000)) == "10,000 spans, 3 services, 2.500 ms, 1 error"
    assert summary(trace_json(1)) == "1 span, 1 service, 2.500 ms, 0 errors"
    ids = {getattr(c, "id", None) for c in components(page("x", trace_json(3, truncated=True)))}
    assert "trace-truncated" in ids
    assert "trace-truncated" not in {getattr(c, "id", None) for c in components(page("x", trace_json(3)))}


def test_unknown_trace() -> None:
    texts = [c.children for c in components(page("ab" * 16, None)) if isinstance(c.children, str)]
    assert texts == [f"Trace {'ab' * 16}", "Not found."]


def test_colours_are_stable_distinct_and_never_the_error_colour() -> None:
    names = [f"service-{i:02}" for i in range(18)]
    colours = service_colours(list(reversed(names)))
    assert colours == service_colours(names)
    assert len(set(colours.values())) == 18
    assert ERROR_COLOUR not in colours.values()


def test_the_assets_the_page_loads_exist() -> None:
    assert all((ASSETS_DIR / name).is_file() for name in ASSETS)
    assert {p.name for p in ASSETS_DIR.glob("trace*")} == set(ASSETS)
