"""`tracehouse schema apply` on the real embedded ClickHouse: the single-node schema it makes is
the one `serve` makes, and applying twice changes nothing (same tables, same version rows). The
cluster DDL runs on a real ClickHouse engine acting as one node of the cluster (`cluster_rehearsal`)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_schema import OTEL_TRACES_COLUMNS
from tracehouse.cli import main
from tracehouse.storage import StoreConfig, ddl, open_store
from tracehouse.storage.client import connect
from tracehouse.storage.migrate import migrations

pytestmark = pytest.mark.integration

REHEARSAL = Path(__file__).with_name("cluster_rehearsal.py")


@pytest.fixture
def database(chdb_dir: Path) -> Iterator[StoreConfig]:
    config = StoreConfig(dsn=f"chdb://{chdb_dir}?database=t_{uuid.uuid4().hex[:12]}")
    yield config
    client = connect(config, database="default")
    client.command("DROP DATABASE IF EXISTS {db:Identifier}", parameters={"db": config.database})
    client.close()


def snapshot(config: StoreConfig) -> dict[str, Any]:
    client = connect(config)
    try:
        names = [row[0] for row in client.query("SHOW TABLES").result_rows]
        show = "SHOW CREATE TABLE {t:Identifier}"
        return {
            "ddl": {t: client.command(show, parameters={"t": t}).replace(config.database, "DB") for t in names},
            "versions": client.query(
                "SELECT Version, Name FROM tracehouse_schema_migrations ORDER BY Version, AppliedAt"
            ).result_rows,
        }
    finally:
        client.close()


def apply(capsys: pytest.CaptureFixture[str], chdb_dir: Path, database: str) -> list[str]:
    assert main(["schema", "apply", "--clickhouse", f"chdb://{chdb_dir}", "--database", database]) == 0
    return capsys.readouterr().out.splitlines()


def test_apply_twice_changes_nothing(capsys: pytest.CaptureFixture[str], chdb_dir: Path, database: StoreConfig) -> None:
    shipped = migrations(ttl_days=7)
    first = apply(capsys, chdb_dir, database.database)
    assert (
        first[0]
        == f"schema: chdb://{chdb_dir}?database={database.database}, database {database.database}, on a single node"
    )
    assert first[1:-1] == [
        f"schema: applying migration {m.version:04d}_{m.name} ({n} of {len(shipped)})" for n, m in enumerate(shipped, 1)
    ]
    assert first[-1] == f"schema: version {shipped[-1].version} ({len(shipped)} migration(s) applied now)"
    before = snapshot(database)
    assert before["versions"] == [(m.version, m.name) for m in shipped]
    assert "otel_traces" in before["ddl"]

    second = apply(capsys, chdb_dir, database.database)
    assert second[1:] == [f"schema: version {shipped[-1].version} (nothing to apply)"]
    assert snapshot(database) == before


def test_apply_makes_the_schema_serve_makes(
    capsys: pytest.CaptureFixture[str], chdb_dir: Path, database: StoreConfig
) -> None:
    apply(capsys, chdb_dir, database.database)
    served = StoreConfig(dsn=f"chdb://{chdb_dir}?database=t_{uuid.uuid4().hex[:12]}")
    store = open_store(served)
    try:
        assert snapshot(database)["ddl"] == snapshot(served)["ddl"]
        assert store.schema_version() == migrations(ttl_days=7)[-1].version
    finally:
        store.client().command("DROP DATABASE {db:Identifier}", parameters={"db": served.database})
        store.close()


CLUSTER_CONFIG = """<clickhouse>
  <zookeeper><implementation>testkeeper</implementation></zookeeper>
  <macros><shard>02</shard><replica>ch-s2-r1</replica></macros>
  <remote_servers><tracehouse>
    <shard><replica><host>ch-s1-r1</host><port>9000</port></replica></shard>
    <shard><replica><host>ch-s2-r1</host><port>9000</port></replica></shard>
  </tracehouse></remote_servers>
</clickhouse>
"""


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("cluster")
    (directory / "config.xml").write_text(CLUSTER_CONFIG, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(REHEARSAL), str(directory / "data"), str(directory / "config.xml")],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert "error" not in result, result.get("error")
    return result


def test_cluster_ddl_parses_and_runs_on_clickhouse_twice_unchanged(rehearsal: dict[str, Any]) -> None:
    assert rehearsal["statements"] == sum(len(s.statements) for s in ddl.steps(ddl.Target("tracehouse", "c"), 7))
    assert rehearsal["unchanged"]
    # ALTERs and copies are parsed, not run (a replicated table is read-only on the test keeper;
    # a copy reads the absent shard): each of them, once per apply, and nothing else.
    alters = [
        s
        for step in ddl.steps(ddl.Target("tracehouse", "tracehouse"), 7)
        for s in step.statements
        if s.startswith(("ALTER", "INSERT"))
    ]
    assert any(s.startswith("INSERT") for s in alters)
    assert rehearsal["parsed_only"] == alters * 2
    statement, parsed = rehearsal["sync"]
    assert parsed == statement  # the replica sync `schema apply` ends with parses as written


def test_cluster_tables_have_the_replicated_and_distributed_engines(rehearsal: dict[str, Any]) -> None:
    engines = {name: engine for name, (engine, _, _) in rehearsal["tables"].items()}
    assert engines == {
        "otel_traces": "Distributed",
        "otel_traces_local": "ReplicatedMergeTree",
        "otel_traces_otlp": "Null",
        "otel_traces_otlp_mv": "MaterializedView",
        "otel_traces_trace_id_ts": "Distributed",
        "otel_traces_trace_id_ts_local": "ReplicatedAggregatingMergeTree",
        "otel_traces_trace_id_ts_mv": "MaterializedView",
        "tracehouse_breaker_stats": "Distributed",
        "tracehouse_breaker_stats_local": "ReplicatedReplacingMergeTree",
        "tracehouse_link_dirty": "Distributed",
        "tracehouse_link_dirty_local": "ReplicatedMergeTree",
        "tracehouse_link_dirty_mv": "MaterializedView",
        "tracehouse_links_1m": "ReplicatedMergeTree",
        "tracehouse_operations": "Distributed",
        "tracehouse_operations_local": "ReplicatedAggregatingMergeTree",
        "tracehouse_operations_mv": "MaterializedView",
        "tracehouse_red_1m": "Distributed",
        "tracehouse_red_1m_local": "ReplicatedAggregatingMergeTree",
        "tracehouse_red_1m_mv": "MaterializedView",
        "tracehouse_schema_migrations": "ReplicatedReplacingMergeTree",
        "tracehouse_trace_summaries": "Distributed",
        "tracehouse_trace_summaries_local": "ReplicatedAggregatingMergeTree",
        "tracehouse_trace_summaries_mv": "MaterializedView",
    }


def test_keeper_paths_come_from_the_node_macros(rehearsal: dict[str, Any]) -> None:
    replicas = {table: (path, name) for table, path, name in rehearsal["replicas"]}
    assert replicas["otel_traces_local"] == ("/clickhouse/tables/02/tracehouse/otel_traces_local", "ch-s2-r1")
    assert replicas["tracehouse_links_1m"] == ("/clickhouse/tables/all/tracehouse/tracehouse_links_1m", "02-ch-s2-r1")
    assert len(replicas) == 9


def test_views_hang_off_the_shard_local_span_table(rehearsal: dict[str, Any]) -> None:
    tables = rehearsal["tables"]
    assert tables["otel_traces_local"][2] == [
        "otel_traces_trace_id_ts_mv", "tracehouse_link_dirty_mv", "tracehouse_operations_mv", "tracehouse_red_1m_mv",
        "tracehouse_trace_summaries_mv",
    ]  # fmt: skip
    assert tables["otel_traces"][2] == []  # nothing fires on the Distributed table: no double counting
    assert tables["otel_traces_otlp"][2] == ["otel_traces_otlp_mv"]
    assert "TO tracehouse.otel_traces " in tables["otel_traces_otlp_mv"][1]


def test_the_distributed_span_table_keeps_the_exporter_columns(rehearsal: dict[str, Any]) -> None:
    columns = rehearsal["columns"]
    assert [tuple(c) for c in columns["otel_traces"]] == OTEL_TRACES_COLUMNS
    assert columns["otel_traces"] == columns["otel_traces_local"]
