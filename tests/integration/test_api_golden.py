"""Golden answers: every read API (native, Zipkin v2, Jaeger, Jaeger v3) on the fixed data
set of golden_data.py, compared with the JSON files in snapshots/api/. A change in any field,
unit or order fails here; REGENERATE_SNAPSHOTS=true rewrites the files (review the diff).
Runs in process (the real query app over the real store, through an ASGI client)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.integration import golden_data as data

SNAPSHOTS = Path(__file__).parent / "snapshots" / "api"
REGENERATE = os.environ.get("REGENERATE_SNAPSHOTS", "").lower() == "true"

US, MS_ = 1_000, 1_000_000
START_US, END_US = data.START_NS // US, data.END_NS // US
END_MS, LOOKBACK_MS = data.END_NS // MS_, (data.END_NS - data.START_NS) // MS_
RANGE = {"start": str(START_US), "end": str(END_US)}
ZIPKIN_RANGE = {"endTs": str(END_MS), "lookback": str(LOOKBACK_MS)}
FAILED = data.trace_id(2)

#: name → (path, query parameters). One file per name.
REQUESTS: dict[str, tuple[str, dict[str, Any]]] = {
    "native_services": ("/api/v1/services", {}),
    "native_operations": ("/api/v1/services/orders/operations", {}),
    "native_search_service": ("/api/v1/traces", {"service": "gateway", **RANGE}),
    "native_search_attr_error": ("/api/v1/traces", {"attr": "card.brand=amex", "error": "true", **RANGE}),
    "native_search_duration_limit": ("/api/v1/traces", {"minDuration": "100ms", "limit": "2", **RANGE}),
    "native_trace": (f"/api/v1/traces/{FAILED}", {}),
    "native_trace_unknown": (f"/api/v1/traces/{'f' * 32}", {}),
    "native_trace_malformed": ("/api/v1/traces/xyz", {}),
    "native_dependencies": ("/api/v1/dependencies", RANGE),
    "native_red": ("/api/v1/metrics/red", {"service": "orders", "step": "60s", **RANGE}),
    "native_operation_stats": ("/api/v1/metrics/operations", {"service": "orders", **RANGE}),
    "native_attribute_keys": ("/api/v1/attributes/keys", RANGE),
    "native_attribute_values": ("/api/v1/attributes/values", {"key": "card.brand", **RANGE}),
    "zipkin_services": ("/api/v2/services", {}),
    "zipkin_spans": ("/api/v2/spans", {"serviceName": "orders"}),
    "zipkin_remote_services": ("/api/v2/remoteServices", {"serviceName": "orders"}),
    "zipkin_traces": ("/api/v2/traces", {"serviceName": "payments", **ZIPKIN_RANGE}),
    "zipkin_traces_annotation": ("/api/v2/traces", {"annotationQuery": "error", **ZIPKIN_RANGE}),
    "zipkin_trace": (f"/api/v2/trace/{FAILED}", {}),
    "zipkin_trace_many": ("/api/v2/traceMany", {"traceIds": f"{data.trace_id(1)},{FAILED}"}),
    "zipkin_dependencies": ("/api/v2/dependencies", ZIPKIN_RANGE),
    "zipkin_autocomplete_keys": ("/api/v2/autocompleteKeys", {}),
    "jaeger_services": ("/api/services", {}),
    "jaeger_operations": ("/api/services/orders/operations", {}),
    "jaeger_operations_kind": ("/api/operations", {"service": "orders", "spanKind": "client"}),
    "jaeger_search": ("/api/traces", {"service": "orders", "operation": "SELECT stock", **RANGE}),
    "jaeger_trace": (f"/api/traces/{FAILED}", {}),
    "jaeger_dependencies": ("/api/dependencies", ZIPKIN_RANGE),
    "jaeger_v3_services": ("/api/v3/services", {}),
    "jaeger_v3_operations": ("/api/v3/operations", {"service": "payments"}),
    "jaeger_v3_trace": (f"/api/v3/traces/{FAILED}", {}),
    "jaeger_v3_search": (
        "/api/v3/traces",
        {
            "query.serviceName": "payments",
            "query.attributes": '{"card.brand": "amex"}',
            "query.startTimeMin": "2026-11-01T09:59:00Z",
            "query.startTimeMax": "2026-11-01T10:10:00Z",
        },
    ),
    # The spelling of Jaeger's own HTTP gateway: the same answer.
    "jaeger_v3_search_snake_case": (
        "/api/v3/traces",
        {
            "query.service_name": "payments",
            "query.attributes": '{"card.brand": "amex"}',
            "query.start_time_min": "2026-11-01T09:59:00Z",
            "query.start_time_max": "2026-11-01T10:10:00Z",
            "query.num_traces": "5",
        },
    ),
}


Get = Callable[[str, dict[str, Any]], httpx.Response]


def asgi_get(app: FastAPI) -> Get:
    """GET through the ASGI interface: the app's whole HTTP layer, no socket."""

    async def get(path: str, params: dict[str, Any]) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://golden") as client:
            return await client.get(path, params=params)

    return lambda path, params: asyncio.run(get(path, params))


@pytest.fixture(scope="module")
def client(golden_app: FastAPI) -> Get:
    return asgi_get(golden_app)


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_answer_matches_its_golden_file(client: Get, name: str) -> None:
    path, params = REQUESTS[name]
    answer = client(path, params)
    got = {"status": answer.status_code, "body": answer.json()}
    golden = SNAPSHOTS / f"{name}.json"
    if REGENERATE:
        golden.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n")
    assert golden.exists(), f"no golden file {golden.name}: run with REGENERATE_SNAPSHOTS=true and review it"
    assert got == json.loads(golden.read_text()), f"{path} answers differently from {golden.name}"


def test_every_golden_file_has_a_request() -> None:
    """A renamed or dropped request must not leave a stale file behind."""
    assert sorted(p.stem for p in SNAPSHOTS.glob("*.json")) == sorted(REQUESTS)
