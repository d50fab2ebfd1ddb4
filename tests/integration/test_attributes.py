"""Attribute autocomplete on the real store: keys by scope and frequency, values by prefix,
restricted to a service and a time range; hostile keys are values, never SQL."""

from __future__ import annotations

import pytest

from tests.integration.test_search import MS, NOW, S, add_trace
from tracehouse.storage import ClickHouseStore, SpanBatch

pytestmark = pytest.mark.integration
RANGE = (NOW - 3600_000 * MS, NOW + 60_000 * MS)


@pytest.fixture
def seeded(store: ClickHouseStore) -> None:
    batch = SpanBatch()
    for i, method in enumerate(["GET", "GET", "GET", "POST"]):
        add_trace(batch, NOW + i * MS, [
            S("api", "handle", attrs={"http.method": method, "http.route": "/items"}, resource={"region": "eu"}),
            S("db", "query", parent=0, attrs={"db.system": "postgresql"}, kind="Client"),
        ])  # fmt: skip
    add_trace(batch, NOW - 7200_000 * MS, [S("api", "old", attrs={"ancient": "yes"})])
    store.write(batch)


@pytest.mark.usefixtures("seeded")
def test_keys_by_frequency_and_scope(store: ClickHouseStore) -> None:
    keys = store.attribute_keys(*RANGE)
    assert keys[0] == ("service.name", "resource", 8)
    assert ("region", "resource", 4) in keys
    assert ("http.method", "span", 4) in keys
    assert ("db.system", "span", 4) in keys
    assert all(k != "ancient" for k, _, _ in keys)  # outside the range
    assert {k for k, _, _ in store.attribute_keys(*RANGE, service="db")} == {"db.system", "service.name"}
    assert len(store.attribute_keys(*RANGE, limit=2)) == 2


@pytest.mark.usefixtures("seeded")
def test_values_by_prefix(store: ClickHouseStore) -> None:
    assert store.attribute_values("http.method", *RANGE) == [("GET", 3), ("POST", 1)]
    assert store.attribute_values("http.method", *RANGE, prefix="P") == [("POST", 1)]
    assert store.attribute_values("region", *RANGE, service="api") == [("eu", 4)]
    assert store.attribute_values("x') OR 1=1 --", *RANGE) == []
