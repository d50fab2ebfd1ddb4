"""A web page cannot write spans to a local Zipkin receiver: a browser's cross-site "simple"
request (an `Origin`, and no or a CORS-safelisted Content-Type, so no preflight) is refused
with 403, while a reporter's body without Content-Type is still read as JSON, as Zipkin does —
through the real uvicorn receiver, pipeline and embedded store of test_zipkin_http."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.test_zipkin_http import client, fixture, start_receiver, store_config, stored  # noqa: F401
from tracehouse.storage import ClickHouseStore

pytestmark = pytest.mark.e2e

SPANS = "brave_local_span.json"
PAGE = "https://evil.example"


@pytest.mark.parametrize(
    "content_type", [None, "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_a_cross_site_simple_request_is_refused(
    client: httpx.Client,  # noqa: F811
    store: ClickHouseStore,
    content_type: str | None,
) -> None:
    headers = {"Origin": PAGE} if content_type is None else {"Origin": PAGE, "Content-Type": content_type}
    response = client.post("/api/v2/spans", content=fixture(SPANS), headers=headers)
    assert content_type or "content-type" not in response.request.headers  # as fetch() sends a Blob without a type
    assert response.status_code == 403, response.text
    assert "a browser request with an Origin" in response.text
    got, _ = stored(store, fixture(SPANS))
    assert got == []


@pytest.mark.parametrize(
    "headers", [{}, {"Origin": PAGE, "Content-Type": "application/json"}], ids=["reporter", "preflighted type"]
)
def test_other_senders_are_taken(
    client: httpx.Client,  # noqa: F811
    store: ClickHouseStore,
    headers: dict[str, str],
) -> None:
    response = client.post("/api/v2/spans", content=fixture(SPANS), headers=headers)
    assert response.status_code == 202, response.text
    got, want = stored(store, fixture(SPANS))
    assert got == want
