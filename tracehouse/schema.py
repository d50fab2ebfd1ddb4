"""`tracehouse schema print|apply`: the schema's DDL for one node or ON CLUSTER, written out
or applied with a line of progress per migration. The SQL is `tracehouse.storage.ddl`'s."""

from __future__ import annotations

import argparse
import sys

from tracehouse.config import SERVE_OPTIONS, ttl_days
from tracehouse.options import Option, resolve
from tracehouse.storage import ConfigError, StoreConfig
from tracehouse.storage.admin import apply_schema
from tracehouse.storage.ddl import Target, render
from tracehouse.storage.migrate import latest_version

_FROM_SERVE = {option.flag: option for option in SERVE_OPTIONS}
SCHEMA_OPTIONS = (
    _FROM_SERVE["--data-dir"],
    _FROM_SERVE["--clickhouse"],
    Option(
        "--cluster",
        "ClickHouse cluster (a remote_servers name): Replicated local tables and Distributed tables ON CLUSTER",
        None,
        str,
        "NAME",
        "none (a single node)",
    ),
    Option("--database", "database to create the schema in", None, str, "DB", "the --clickhouse DSN's database"),
    _FROM_SERVE["--ttl-days"],
)


def run_schema(args: argparse.Namespace) -> int:
    values = resolve(args, SCHEMA_OPTIONS)
    store = StoreConfig(
        dsn=values["clickhouse"], ttl_days=ttl_days(values), retention_given=values["ttl_days"] is not None
    )
    if values["database"] is not None:
        store = store.with_database(values["database"])
    store.validate()
    target = Target(store.database, values["cluster"])
    target.validate()
    if args.action == "print":
        sys.stdout.write(render(target, store.ttl_days))
        return 0
    return _apply(store, target)


def _apply(store: StoreConfig, target: Target) -> int:
    if target.cluster is not None and store.embedded:
        raise ConfigError(
            "cluster: the embedded store is a single node; --cluster needs a ClickHouse server "
            "(--clickhouse http(s)://user:pass@host:8123/db)"
        )
    where = f"cluster {target.cluster}" if target.cluster else "a single node"
    print(f"schema: {store.redacted_dsn()}, database {target.database}, on {where}", flush=True)
    applied = apply_schema(store, target.cluster, progress=lambda line: print(f"schema: {line}", flush=True))
    state = f"{len(applied)} migration(s) applied now" if applied else "nothing to apply"
    print(f"schema: version {latest_version()} ({state})", flush=True)
    return 0
