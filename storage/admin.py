"""Schema administration: `tracehouse schema apply` (the single-node migrations exactly as
`serve` applies them, or their cluster form from `ddl`) and the read-only version check the
collector and query processes make at start-up. Reading never creates anything."""

from __future__ import annotations

from collections.abc import Callable

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from tracehouse.storage import ddl
from tracehouse.storage.client import connect, ensure_database
from tracehouse.storage.config import StoreConfig
from tracehouse.storage.errors import ConfigError, StorageError
from tracehouse.storage.lock import DataDirLock
from tracehouse.storage.migrate import VERSION_TABLE_NAME, apply_migrations, apply_retention, recorded_versions

Progress = Callable[[str], None]


def _silent(_: str) -> None:
    pass


def apply_schema(config: StoreConfig, cluster: str | None = None, progress: Progress = _silent) -> list[str]:
    """Apply to `config`'s database (created if missing) every step it has not recorded, on one
    node or ON CLUSTER `cluster`; returns the titles of the migrations applied now. Idempotent:
    a second run applies nothing and changes nothing."""
    config.validate()
    if cluster is None:
        return _apply_single_node(config, progress)
    if config.embedded:
        raise ConfigError(
            "cluster: the embedded store is a single node; --cluster needs a ClickHouse server "
            "(--clickhouse http(s)://user:pass@host:8123/db)"
        )
    return _apply_cluster(config, ddl.Target(config.database, cluster), progress)


def recorded_version(config: StoreConfig) -> int:
    """The schema version `config`'s database records (0: none, or no such database)."""
    client = connect(config, database="default")
    try:
        return max(recorded_versions(client, config.database), default=0)
    except ClickHouseError as exc:
        raise StorageError(f"reading the schema version of {config.database} failed: {exc}") from exc
    finally:
        client.close()


def _apply_single_node(config: StoreConfig, progress: Progress) -> list[str]:
    """What `open_store` does at start-up: lock (embedded), database, migrations."""
    lock = DataDirLock(config.path) if config.embedded else None
    try:
        ensure_database(config)
        client = connect(config)
        try:
            applied = apply_migrations(client, config.ttl_days, progress)
            if config.retention_given:
                apply_retention(client, config.ttl_days, progress)
        except ClickHouseError as exc:
            raise StorageError(f"schema apply on {config.redacted_dsn()} failed: {exc}") from exc
        finally:
            client.close()
    finally:
        if lock is not None:
            lock.release()
    return [f"{m.version:04d}_{m.name}" for m in applied]


def _apply_cluster(config: StoreConfig, target: ddl.Target, progress: Progress) -> list[str]:
    setup, *migrations = ddl.steps(target, config.ttl_days)
    client = connect(config, database="default")
    try:
        progress(f"database {target.database} and the schema version table, on cluster {target.cluster}")
        _run(client, setup)
        done = recorded_versions(client, target.database)
        pending = [step for step in migrations if step.version not in done]
        for number, step in enumerate(pending, 1):
            progress(
                f"applying migration {step.title} ({number} of {len(pending)}): "
                f"{len(step.statements)} statements on cluster {target.cluster}"
            )
            _run(client, step)
            client.insert(
                VERSION_TABLE_NAME,
                [[step.version, step.name]],
                column_names=["Version", "Name"],
                database=target.database,
            )
        # The versions were written on this node; a collector may ask any other at once.
        progress(f"waiting for every node of {target.cluster} to see the schema version")
        client.command(ddl.sync_versions(target))
        return [step.title for step in pending]
    except ClickHouseError as exc:
        raise StorageError(f"schema apply on cluster {target.cluster} failed: {exc}") from exc
    finally:
        client.close()


def _run(client: Client, step: ddl.Step) -> None:
    """ON CLUSTER statements return once every node ran them (or fail naming the node)."""
    for number, statement in enumerate(step.statements, 1):
        try:
            client.command(statement)
        except ClickHouseError as exc:
            raise StorageError(f"schema apply: {step.title}, statement {number}: {exc}") from exc
