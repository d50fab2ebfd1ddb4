"""Fixtures of the integration tier beyond the store ones in tests/conftest.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from tests.integration import golden_data as data
from tracehouse.query import build_query_app
from tracehouse.storage import StoreConfig, open_store


@pytest.fixture(scope="session")
def golden_app(chdb_dir: Path) -> Iterator[FastAPI]:
    """The query app over a store holding golden_data's fixed data set, linked (kept ten
    years: the data set has fixed dates). Read-only: tests must not write to it."""
    config = StoreConfig(dsn=f"chdb://{chdb_dir}?database=golden_{uuid.uuid4().hex[:8]}", ttl_days=3650)
    store = open_store(config)
    try:
        for batch in data.batches():
            store.write(batch)
        store.link(data.START_NS, data.END_NS)
        yield build_query_app(store, dict)
    finally:
        store.client().command("DROP DATABASE IF EXISTS {db:Identifier}", parameters={"db": config.database})
        store.close()
