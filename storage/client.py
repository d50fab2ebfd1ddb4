"""DSN -> clickhouse-connect client; the only place that knows embedded from server mode."""

from __future__ import annotations

import logging
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from tracehouse.storage.config import StoreConfig
from tracehouse.storage.errors import StoreLocked, StoreUnavailable

log = logging.getLogger(__name__)

#: Settings of every query on a ClickHouse server. On a cluster (`tracehouse schema apply
#: --cluster`) they make the single-node SQL right as it stands; on one server they change nothing:
#: * an insert into a Distributed table returns once the shards have the rows (acknowledged spans
#:   must be durable), and carries its deduplication token to them;
#: * an IN/JOIN subquery over a Distributed table reads each shard's local table: every such
#:   subquery matches rows of the same trace, and a trace lives on one shard (cityHash64(TraceId));
#: * the linker's DELETE of superseded links waits for this replica only, not for every node.
SERVER_SETTINGS: dict[str, Any] = {
    "distributed_foreground_insert": 1,
    "distributed_product_mode": "local",
    "lightweight_deletes_sync": 1,
}

#: Background merges of the embedded engine. Its defaults are for a server with many cores and
#: memory: 16 threads and up to 32 merges at once, which may take all the memory an insert needs.
#: Over a 5-minute ingest at capacity (`benchmarks.ingest --seconds 300`) that made inserts fail
#: for memory even when tried again alone, so batches went to the spool and senders were refused
#: (48.9k spans/s stored). With at most 8 merges at once (4 threads), and no new merge started while
#: merges hold 40 % of the engine's memory cap: 52.7k and 59.2k in two runs, nothing spooled or refused.
EMBEDDED_MERGE_THREADS = 4
EMBEDDED_MERGE_MEMORY_SHARE = 0.4


def embedded_options(config: StoreConfig) -> dict[str, Any]:
    """Server settings of the embedded engine (they take effect with its first connection)."""
    options: dict[str, Any] = {"background_pool_size": EMBEDDED_MERGE_THREADS}
    if config.memory_limit:
        options["max_server_memory_usage"] = config.memory_limit
        options["merges_mutations_memory_usage_soft_limit"] = int(config.memory_limit * EMBEDDED_MERGE_MEMORY_SHARE)
    return options


def connect(config: StoreConfig, *, database: str | None = None) -> Client:
    """A new client for `config` (on `database` if given, else the DSN's database).

    Embedded clients in one process share one engine; a server client is safe to use
    from one thread at a time (the store keeps one per role).
    """
    kwargs: dict[str, Any] = {"dsn": config.dsn}
    if database is not None:
        kwargs["database"] = database
        if config.embedded:  # the DSN's ?database= would be reported as an ignored argument
            kwargs["dsn"] = config.dsn.split("?", 1)[0]
    if not config.embedded:
        kwargs["autogenerate_session_id"] = False
        kwargs["settings"] = dict(SERVER_SETTINGS)
    else:
        kwargs["chdb_options"] = embedded_options(config)
    try:
        return clickhouse_connect.get_client(**kwargs)
    except ClickHouseError as exc:
        if "Cannot lock file" in str(exc):
            raise StoreLocked(
                f"data directory {config.path} is locked by another ClickHouse/chDB process. "
                "Stop it, or give this one another --data-dir."
            ) from exc
        raise StoreUnavailable(f"cannot connect to ClickHouse at {config.redacted_dsn()}: {exc}") from exc


def ensure_database(config: StoreConfig) -> None:
    """Create the DSN's database if it does not exist yet."""
    if config.database == "default":
        return
    client = connect(config, database="default")
    try:
        client.command("CREATE DATABASE IF NOT EXISTS {db:Identifier}", parameters={"db": config.database})
    finally:
        client.close()
