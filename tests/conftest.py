"""Shared fixtures. Store tests run on the embedded ClickHouse (always) and on a ClickHouse
server in a container when a Docker engine is reachable (skipped, with the reason, when not).
The embedded engine allows one data path per process, so every in-process test shares one
path and gets a database of its own."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tracehouse.storage import ClickHouseStore, StoreConfig, open_store

CLICKHOUSE_IMAGE = "clickhouse/clickhouse-server:25.8"


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture(scope="session")
def clickhouse_server() -> Iterator[str]:
    """Base URL (http://user:pass@host:port) of a ClickHouse server in a container."""
    problem = docker_engine_problem()
    if problem:
        pytest.skip(f"ClickHouse-server tier needs a Docker engine: {problem}")
    from testcontainers.community.clickhouse import ClickHouseContainer

    with ClickHouseContainer(CLICKHOUSE_IMAGE) as container:
        host = container.get_container_host_ip()
        port = container.get_exposed_port(8123)
        yield f"http://{container.username}:{container.password}@{host}:{port}"


def docker_engine_problem() -> str | None:
    """Why no Docker engine can be used, or None when one answers."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        return None  # a remote engine: let testcontainers try it and fail loudly if it is wrong
    path = host.removeprefix("unix://")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(path)
        except OSError as exc:
            return f"nothing answers on {path} ({exc.strerror})"
    return None


@pytest.fixture(params=["embedded", "server"])
def store_config(request: pytest.FixtureRequest, chdb_dir: Path) -> StoreConfig:
    database = f"t_{uuid.uuid4().hex[:12]}"
    if request.param == "embedded":
        return StoreConfig(dsn=f"chdb://{chdb_dir}?database={database}")
    server: Any = request.getfixturevalue("clickhouse_server")
    return StoreConfig(dsn=f"{server}/{database}")


@pytest.fixture
def store(store_config: StoreConfig) -> Iterator[ClickHouseStore]:
    opened = open_store(store_config)
    yield opened
    opened.client().command("DROP DATABASE IF EXISTS {db:Identifier}", parameters={"db": store_config.database})
    opened.close()
