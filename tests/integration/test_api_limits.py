"""What one read request may cost: at most `MAX_FILTERS` attribute conditions (and
`MAX_FILTER_CHARS` of them) in every API that searches, refused with a 400 naming the limit;
JSON parameters nested past the parser's depth are a 400, not a 500; a read past its time limit
fails alone, read-only, and the caller is told what failed without the engine's text.
Runs in process: the real query app over the real store (golden_data's traces)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi import FastAPI

from tests.integration.test_api_golden import RANGE, ZIPKIN_RANGE, Get, asgi_get
from tracehouse.query import build_query_app
from tracehouse.query.params import MAX_FILTER_CHARS, MAX_FILTERS
from tracehouse.storage import ClickHouseStore, StoreBusy, StoreConfig, StoreUnavailable
from tracehouse.storage import clickhouse as ch

V3_RANGE = {"query.startTimeMin": "2026-11-01T09:00:00Z", "query.startTimeMax": "2026-11-01T11:00:00Z"}
#: A query that runs for minutes unless stopped.
ENDLESS = "SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) % 7 = 3"


@pytest.fixture(scope="module")
def client(golden_app: FastAPI) -> Get:
    return asgi_get(golden_app)


def _searches(n: int) -> dict[str, tuple[str, dict[str, Any]]]:
    """The same search of `n` attribute conditions in each API."""
    pairs = {f"k{i}": "v" for i in range(n)}
    return {
        "native": ("/api/v1/traces", {**RANGE, "attr": [f"{k}={v}" for k, v in pairs.items()]}),
        "zipkin": (
            "/api/v2/traces",
            {**ZIPKIN_RANGE, "annotationQuery": " and ".join(f"{k}={v}" for k, v in pairs.items())},
        ),
        "jaeger tags": ("/api/traces", {**RANGE, "tags": _json(pairs)}),
        "jaeger tag": ("/api/traces", {**RANGE, "tag": [f"{k}:{v}" for k, v in pairs.items()]}),
        "jaeger v3": ("/api/v3/traces", {**V3_RANGE, "query.attributes": _json(pairs)}),
    }


def _json(pairs: dict[str, str]) -> str:
    return "{" + ",".join(f'"{k}":"{v}"' for k, v in pairs.items()) + "}"


def _message(body: dict[str, Any]) -> str:
    """The error message, native or in Jaeger's envelope."""
    return str(body["error"]["message"] if "error" in body else body["errors"][0]["msg"])


@pytest.mark.parametrize("api", sorted(_searches(1)))
def test_a_search_of_more_than_the_cap_of_conditions_is_a_400_naming_it(client: Get, api: str) -> None:
    path, params = _searches(MAX_FILTERS + 1)[api]
    answer = client(path, params)
    assert answer.status_code == 400, answer.text[:300]
    assert f"at most {MAX_FILTERS} attribute conditions" in _message(answer.json())
    path, params = _searches(MAX_FILTERS)[api]
    assert client(path, params).status_code in (200, 404)  # v3: 404 when no trace matches


def test_the_cap_counts_zipkins_remote_service_and_every_jaeger_tag_form(client: Get) -> None:
    terms = " and ".join(f"k{i}=v" for i in range(MAX_FILTERS))
    zipkin = client("/api/v2/traces", {**ZIPKIN_RANGE, "annotationQuery": terms, "remoteServiceName": "db"})
    assert zipkin.status_code == 400, zipkin.text[:300]
    half = {f"k{i}": "v" for i in range(MAX_FILTERS // 2 + 1)}
    tags = {"tags": _json(half), "tag": [f"t{i}:v" for i in range(MAX_FILTERS // 2)]}
    assert client("/api/traces", {**RANGE, **tags}).status_code == 400


def test_conditions_longer_than_the_cap_in_all_are_a_400(client: Get) -> None:
    long = "x" * (MAX_FILTER_CHARS // 2)
    answer = client("/api/v1/traces", {**RANGE, "attr": [f"a={long}", f"b={long}"]})
    assert answer.status_code == 400
    assert f"at most {MAX_FILTER_CHARS}" in _message(answer.json())


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/traces", {**RANGE, "service": "frontend", "tags": "[" * 5_000}),
        ("/api/traces", {**RANGE, "service": "frontend", "tags": '{"a":' * 5_000}),
        ("/api/v3/traces", {**V3_RANGE, "query.attributes": "[" * 5_000}),
        ("/api/v3/traces", {**V3_RANGE, "query.attributes": '{"a":' * 5_000}),
    ],
)
def test_json_nested_deeper_than_the_parser_goes_is_a_400(client: Get, path: str, params: dict[str, str]) -> None:
    """It was a 500 with a RecursionError: the JSON parser's depth limit is not a ValueError."""
    answer = client(path, params)
    assert answer.status_code == 400, answer.text[:300]
    assert "must be a JSON object" in _message(answer.json())


def test_a_read_runs_read_only_and_fails_alone_past_its_time_limit(
    store: ClickHouseStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ((readonly, seconds),) = store._run("SELECT getSetting('readonly'), getSetting('max_execution_time')", {})
    assert (readonly, seconds) == (2, ch.READ_SETTINGS["max_execution_time"])
    monkeypatch.setitem(ch.READ_SETTINGS, "max_execution_time", 1)
    with pytest.raises(StoreBusy, match="ran past the 1 s a read may take"):
        store._run(ENDLESS, {}, "endless")
    assert store.services() == []  # the reader still answers
    # ... and its own settings are untouched (the client also runs migrations and admin commands)
    assert store.client().query("SELECT getSetting('readonly')").result_rows == [(0,)]


def test_a_read_takes_at_most_half_the_embedded_engines_memory() -> None:
    embedded = ch.read_settings(StoreConfig(dsn="chdb:///tmp/x", memory_limit=768 * 2**20))
    assert embedded["max_memory_usage"] == 384 * 2**20
    server = ch.read_settings(StoreConfig(dsn="http://u:p@ch:8123/db", memory_limit=768 * 2**20))
    assert server["max_memory_usage"] == ch.READ_SETTINGS["max_memory_usage"]


class _FailingReader:
    """A reader whose every call fails as `error` (the API's other seams are not reached)."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def services(self) -> list[str]:
        raise self.error

    def breaker_clusters(self, since_s: int) -> list[tuple[str, int, int, int]]:
        raise self.error


@pytest.mark.parametrize(
    ("error", "told"),
    [
        (StoreBusy("query search ran past the 30 s a read may take: Code: 159. SELECT secret"), "time or memory"),
        (StoreUnavailable("query services failed: Code: 210. /var/lib/secret connection refused"), "could not answer"),
    ],
)
def test_a_store_failure_is_told_without_the_engines_text_and_logged_once(
    error: Exception, told: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = build_query_app(_FailingReader(error), dict)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="tracehouse.query.guard"):
        answer = asgi_get(app)("/api/v1/services", {})
    assert answer.status_code == 503
    message = _message(answer.json())
    assert told in message
    assert "server log" in message
    assert "secret" not in answer.text
    assert "Code:" not in answer.text
    assert [r.getMessage().count("secret") for r in caplog.records] == [1]


def test_a_read_only_clickhouse_user_reads_within_its_own_limits(store: ClickHouseStore) -> None:
    # A read-only user (the natural one for `tracehouse query`) may not change these settings, and
    # clickhouse-connect refused every read that sent them ("Setting max_execution_time is readonly"):
    # every API read answered 503 (review). Here the client is told what such a user's server tells it.
    known = store._reader.server_settings
    for name in ch.READ_SETTINGS:
        known[name] = known[name]._replace(readonly=1)
    store._fixed_settings = None
    try:
        assert store.services() == []
    finally:
        for name in ch.READ_SETTINGS:
            known[name] = known[name]._replace(readonly=0)
        store._fixed_settings = None
