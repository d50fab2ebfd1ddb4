"""Shared fixtures. The embedded ClickHouse allows one data path per process, so every
in-process test shares one path and gets a database of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tracehouse.storage import ClickHouseStore, StoreConfig, open_store


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture
def store_config(chdb_dir: Path) -> StoreConfig:
    return StoreConfig(dsn=f"chdb://{chdb_dir}?database=t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def store(store_config: StoreConfig) -> Iterator[ClickHouseStore]:
    opened = open_store(store_config)
    yield opened
    opened.client().command("DROP DATABASE IF EXISTS {db:Identifier}", parameters={"db": store_config.database})
    opened.close()
