"""`tracehouse schema print`: the single-node DDL is the migrations byte for byte, the cluster DDL
is derived from them by rule. Both are snapshot-tested; REGENERATE_SNAPSHOTS=true rewrites the
snapshot files (review the diff) instead of comparing."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tracehouse.cli import main
from tracehouse.storage import ddl
from tracehouse.storage.migrate import VERSION_TABLE, migrations

SNAPSHOTS = Path(__file__).parent / "snapshots"
REGENERATE = os.environ.get("REGENERATE_SNAPSHOTS", "").lower() == "true"
SINGLE = ddl.Target("tracehouse")
CLUSTER = ddl.Target("tracehouse", "tracehouse")


def matches_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if REGENERATE:
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no snapshot {path}; run with REGENERATE_SNAPSHOTS=true and review it"
    assert text == path.read_text(encoding="utf-8"), f"{name} changed; REGENERATE_SNAPSHOTS=true if intended"


@pytest.mark.parametrize(
    ("argv", "snapshot"),
    [
        ([], "schema_single_node.sql"),
        (["--cluster", "tracehouse"], "schema_cluster.sql"),
    ],
    ids=["single node", "cluster"],
)
def test_schema_print_matches_its_snapshot(capsys: pytest.CaptureFixture[str], argv: list[str], snapshot: str) -> None:
    dsn = "http://ch.example:8123/tracehouse"
    assert main(["schema", "print", "--clickhouse", dsn, "--ttl-days", "7", *argv]) == 0
    matches_snapshot(snapshot, capsys.readouterr().out)


def test_database_flag_names_the_database(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "print", "--clickhouse", "http://h:8123/a", "--database", "b", "--cluster", "c"]) == 0
    out = capsys.readouterr().out
    assert "CREATE DATABASE IF NOT EXISTS b ON CLUSTER c;" in out
    assert " a." not in out


def test_single_node_ddl_is_the_migrations_byte_for_byte() -> None:
    """What `serve` applies at start-up is exactly what print shows: statement by statement."""
    found = ddl.steps(SINGLE, ttl_days=7)
    assert found[0].statements == ("CREATE DATABASE IF NOT EXISTS tracehouse", "USE tracehouse", VERSION_TABLE.strip())
    assert [(s.version, s.name, s.statements) for s in found[1:]] == [
        (m.version, m.name, m.statements) for m in migrations(ttl_days=7)
    ]
    text = ddl.render(SINGLE, ttl_days=7)
    for migration in migrations(ttl_days=7):
        for statement in migration.statements:
            assert f"\n{statement};\n" in text


def cluster_statements() -> list[str]:
    return [s for step in ddl.steps(CLUSTER, ttl_days=7) for s in step.statements]


def created(kind: str) -> dict[str, str]:
    pattern = re.compile(rf"^CREATE {kind} IF NOT EXISTS tracehouse\.(\w+) ON CLUSTER tracehouse")
    return {m[1]: s for s in cluster_statements() if (m := pattern.match(s))}


def test_every_cluster_statement_is_idempotent_and_on_the_cluster() -> None:
    for statement in cluster_statements():
        first = statement.split("\n")[0]
        if statement.startswith("INSERT INTO"):
            # A copy runs once, on one node, and skips the rows an earlier run copied.
            assert "GLOBAL NOT IN (SELECT" in statement, statement
            continue
        # MATERIALIZE, MODIFY SETTING, MODIFY QUERY and OR REPLACE end in the same state however often they run.
        pattern = r" IF (NOT )?EXISTS | (MATERIALIZE PROJECTION|MODIFY SETTING|MODIFY QUERY)|^CREATE OR REPLACE "
        assert re.search(pattern, first), first
        assert " ON CLUSTER tracehouse" in statement.split("(")[0].split("\n")[0] or re.match(
            r"CREATE (OR REPLACE )?FUNCTION", statement
        )


def test_sharded_tables_are_replicated_locally_and_distributed_under_their_own_names() -> None:
    tables = created("TABLE")
    for name, placement in ddl.PLACEMENT.items():
        if isinstance(placement, ddl.Sharded):
            local = tables[f"{name}_local"]
            path = re.escape("('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')")
            assert re.search(rf"ENGINE = Replicated\w*MergeTree{path}", local), name
            assert tables[name].startswith(
                f"CREATE TABLE IF NOT EXISTS tracehouse.{name} ON CLUSTER tracehouse AS tracehouse.{name}_local\n"
                f"ENGINE = Distributed('tracehouse', 'tracehouse', '{name}_local', {placement.key})"
            )
        elif isinstance(placement, ddl.EveryNode):
            assert "'/clickhouse/tables/all/{database}/{table}', '{shard}-{replica}'" in tables[name]
            assert f"{name}_local" not in tables
        else:
            assert "ENGINE = Null" in tables[name]


def test_engines_become_their_replicated_forms() -> None:
    tables = created("TABLE")
    assert "ENGINE = ReplicatedMergeTree(" in tables["otel_traces_local"]
    assert "ENGINE = ReplicatedAggregatingMergeTree(" in tables["otel_traces_trace_id_ts_local"]
    assert "ENGINE = ReplicatedAggregatingMergeTree(" in tables["tracehouse_red_1m_local"]
    assert "ENGINE = ReplicatedReplacingMergeTree(" in tables["tracehouse_breaker_stats_local"]
    assert "ENGINE = ReplicatedReplacingMergeTree(" in tables["tracehouse_schema_migrations"]


def test_spans_and_their_trace_id_lookup_share_a_sharding_key() -> None:
    """trace-by-id reads the lookup and the spans of one trace on one shard, and the linker's
    and search's subqueries read shard-local tables (distributed_product_mode = local)."""
    assert (
        ddl.PLACEMENT["otel_traces"] == ddl.PLACEMENT["otel_traces_trace_id_ts"] == ddl.Sharded("cityHash64(TraceId)")
    )


def test_every_table_the_migrations_create_has_a_placement() -> None:
    names = {
        m[1]
        for migration in migrations(ttl_days=7)
        for s in migration.statements
        if (m := re.match(r"CREATE TABLE IF NOT EXISTS (\w+)", s))
    }
    assert names | {"tracehouse_schema_migrations"} == set(ddl.PLACEMENT)


def test_views_over_spans_write_on_the_shard_and_the_otlp_view_through_the_distributed_table() -> None:
    views = created("MATERIALIZED VIEW")
    for name in ("otel_traces_trace_id_ts_mv", "tracehouse_operations_mv", "tracehouse_red_1m_mv"):
        assert "\nFROM tracehouse.otel_traces_local\n" in views[name]
        assert re.search(r"\nTO tracehouse\.\w+_local\n", views[name])
    assert "FROM tracehouse.otel_traces_local" in views["tracehouse_link_dirty_mv"]
    assert "\nTO tracehouse.tracehouse_link_dirty_local\n" in views["tracehouse_link_dirty_mv"]
    otlp = views["otel_traces_otlp_mv"]
    assert "\nTO tracehouse.otel_traces\n" in otlp
    assert "\nFROM tracehouse.otel_traces_otlp\n" in otlp


@pytest.mark.parametrize(
    ("statement", "why"),
    [
        ("RENAME TABLE otel_traces TO spans", "no cluster form for this statement"),
        ("ALTER TABLE otel_traces_otlp ADD COLUMN X String", "no rows to alter"),
        ("CREATE TABLE IF NOT EXISTS new_table (x UInt8) ENGINE = MergeTree ORDER BY x", "no cluster placement"),
        ("CREATE TABLE IF NOT EXISTS otel_traces (x UInt8) ENGINE = Memory", "no replicated form"),
        ("CREATE TABLE IF NOT EXISTS otel_traces_otlp (x UInt8) ENGINE = MergeTree ORDER BY x", "ENGINE = Null"),
        (
            "CREATE MATERIALIZED VIEW IF NOT EXISTS v TO otel_traces AS SELECT * FROM otel_traces JOIN other USING x",
            "one source table",
        ),
        ("DROP TABLE IF EXISTS new_table", "no cluster placement"),
        ("DROP TABLE otel_traces", "no cluster form for this statement"),
        ("INSERT INTO otel_traces SELECT * FROM otel_traces_otlp", "per-node table has no rows to copy"),
        (
            "INSERT INTO tracehouse_traces SELECT * FROM otel_traces"
            " WHERE TraceId NOT IN (SELECT TraceId FROM otel_traces)",
            "must be GLOBAL IN",
        ),
    ],
)
def test_statements_without_a_rule_are_refused_not_guessed(statement: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        ddl.cluster_statement(statement, CLUSTER)


def test_alters_change_the_tables_that_hold_the_rows() -> None:
    alters = [s for s in cluster_statements() if s.startswith("ALTER TABLE")]
    forms = [re.match(r"ALTER TABLE tracehouse\.(\w+) ON CLUSTER tracehouse ", s) for s in alters]
    assert all(forms), alters
    altered = {m[1] for m in forms if m}
    # sharded: their local tables; a view's query: the view on every node
    assert altered == {"otel_traces_local", "tracehouse_traces_local", "otel_traces_otlp_mv"}
    queries = [s for s in alters if " MODIFY QUERY" in s]
    assert queries
    for query in queries:
        assert "\nFROM tracehouse.otel_traces_otlp\n" in query  # the per-node entry table, as its CREATE reads


def test_a_dropped_table_goes_with_its_local_tables_and_a_copy_reads_and_writes_through_distributed_tables() -> None:
    assert ddl.cluster_statement("DROP TABLE IF EXISTS tracehouse_traces", CLUSTER) == [
        "DROP TABLE IF EXISTS tracehouse.tracehouse_traces ON CLUSTER tracehouse SYNC",
        "DROP TABLE IF EXISTS tracehouse.tracehouse_traces_local ON CLUSTER tracehouse SYNC",
    ]
    assert ddl.cluster_statement("DROP TABLE IF EXISTS tracehouse_links_1m", CLUSTER) == [
        "DROP TABLE IF EXISTS tracehouse.tracehouse_links_1m ON CLUSTER tracehouse SYNC"
    ]
    assert ddl.cluster_statement("DROP VIEW IF EXISTS tracehouse_traces_mv", CLUSTER) == [
        "DROP VIEW IF EXISTS tracehouse.tracehouse_traces_mv ON CLUSTER tracehouse"
    ]
    (copy,) = [s for s in cluster_statements() if s.startswith("INSERT INTO")]
    assert copy == (
        "INSERT INTO tracehouse.tracehouse_trace_summaries\n"
        "SELECT * FROM tracehouse.tracehouse_traces FINAL\n"
        "WHERE TraceId GLOBAL NOT IN (SELECT TraceId FROM tracehouse.tracehouse_trace_summaries)"
    )


def test_cluster_names_needing_quotes_are_quoted() -> None:
    target = ddl.Target("obs", "prod-eu.1")
    target.validate()
    (local, distributed) = ddl.cluster_statement(migrations(ttl_days=7)[0].statements[0], target)
    assert local.startswith("CREATE TABLE IF NOT EXISTS obs.otel_traces_local ON CLUSTER `prod-eu.1` (")
    assert "ENGINE = Distributed('prod-eu.1', 'obs', 'otel_traces_local', cityHash64(TraceId))" in distributed


def test_the_version_sync_names_the_cluster_before_the_table() -> None:
    """SYSTEM statements take ON CLUSTER before the table (ClickHouse's grammar; checked there)."""
    assert (
        ddl.sync_versions(CLUSTER)
        == "SYSTEM SYNC REPLICA ON CLUSTER tracehouse tracehouse.tracehouse_schema_migrations"
    )
