"""`tracehouse collector` and `tracehouse query`: the two sides of `serve` as processes of their
own over a ClickHouse server or cluster. Any number of collectors may run (each with its own
spool directory); the dependency linker is safe to run in all of them (`storage.linker`).

Neither creates nor migrates the schema — on a cluster a single-node table made by a collector
would be wrong — they check the version the database records and stop if it is behind.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import replace
from typing import Any

from tracehouse.collector.http_guard import guarded_http_protocol
from tracehouse.config import CollectorProcessConfig, QueryProcessConfig, kept_by_store
from tracehouse.storage import ClickHouseStore, StorageError, StoreConfig, open_store
from tracehouse.storage.admin import recorded_version
from tracehouse.storage.lock import DataDirLock
from tracehouse.storage.migrate import kept_days, latest_version
from tracehouse.wiring import Ingest, bind, http_server, port_of, run, ui_app

log = logging.getLogger("tracehouse")


class SchemaNotReady(StorageError):
    """The database lacks the schema this version of Tracehouse reads and writes."""


def run_collector(config: CollectorProcessConfig) -> None:
    """Ingest until SIGINT/SIGTERM. Raises `StorageError`/`OSError` with a user-facing message."""
    lock = DataDirLock(config.data_dir)  # the spool has one owner
    try:
        store = _open(config.store, writers=config.collector.flush_workers)
        try:
            kept = kept_days(store.client()).get("otel_traces")  # None on a cluster: on its _local tables
            _warn_if_retention_differs(config.store, kept)
            config = replace(config, collector=kept_by_store(config.collector, config.store, kept))
            cc = config.collector
            otlp_http = bind(cc.host, cc.otlp_http_port, "--otlp-http-port")
            zipkin = bind(cc.host, cc.zipkin_port, "--zipkin-port")
            asyncio.run(_collect(config, store, otlp_http, zipkin))
        finally:
            store.close()
    finally:
        lock.release()


def run_query(config: QueryProcessConfig) -> None:
    """Serve the query API and UI until SIGINT/SIGTERM."""
    store = _open(config.store, writers=1)
    try:
        ui = bind(config.query.host, config.query.ui_port, "--ui-port")
        asyncio.run(_query(config, store, ui))
    finally:
        store.close()


def _open(config: StoreConfig, writers: int) -> ClickHouseStore:
    log.info("checking the schema of %s", config.redacted_dsn())
    found, needed = recorded_version(config), latest_version()
    if found < needed:
        raise SchemaNotReady(
            f"database {config.database} at {config.redacted_dsn()} has schema version {found}, this "
            f"Tracehouse needs {needed}: run `tracehouse schema apply --clickhouse DSN` first "
            "(adding --cluster NAME on a ClickHouse cluster)"
        )
    if found > needed:
        log.warning("schema version %d is newer than this Tracehouse knows (%d); upgrade it", found, needed)
    store = open_store(config, migrate=False, writers=writers)
    log.info("store ready, schema version %d", found)
    return store


def _warn_if_retention_differs(config: StoreConfig, kept: int | None) -> None:
    """A collector given `--ttl-days` other than what the store keeps acknowledges spans the store
    drops, or refuses ones it would keep. Without `--ttl-days` it follows the store (`kept_by_store`)."""
    if kept is None or not config.retention_given or kept == config.ttl_days:
        return
    log.warning(
        "the store keeps spans %d days, this collector was given --ttl-days %d: %s; change the store with "
        "`tracehouse schema apply --ttl-days %d`, or start collectors without --ttl-days to follow the store",
        kept, config.ttl_days,
        "spans older than that are acknowledged, then dropped" if kept < config.ttl_days
        else "spans older than that are refused",
        config.ttl_days,
    )  # fmt: skip


async def _collect(
    config: CollectorProcessConfig, store: ClickHouseStore, otlp_http: socket.socket, zipkin: socket.socket
) -> None:
    ingest = Ingest(store, config)
    await ingest.start()
    receiver = ingest.otlp_http_app()

    def health() -> dict[str, Any]:
        """200 while ClickHouse is away too (it answered 500): the spool takes the spans, and a balancer
        must not drop every collector just when they are needed; `status` says what is wrong."""
        answer: dict[str, Any] = {"store": config.store.redacted_dsn(), **ingest.health()}
        try:
            answer["schemaVersion"] = store.schema_version()
        except StorageError:
            answer |= {"schemaVersion": None, "status": "degraded: ClickHouse does not answer, batches are spooled"}
        return answer

    receiver.add_api_route("/healthz", health, methods=["GET"], summary="liveness, store and queue status")
    listeners = [
        (http_server(receiver, ingest.http), otlp_http),
        (http_server(ingest.zipkin_app(), ingest.http), zipkin),
    ]

    def announce() -> None:
        host, http = config.collector.host, f"http://{config.collector.host}:{port_of(otlp_http)}"
        lines = [
            "Tracehouse collector is ready",
            f"  OTLP/HTTP   {http}/v1/traces   (breaker stats: {http}/v1/breakers, health: {http}/healthz)",
            f"  OTLP/gRPC   {host}:{ingest.grpc_port}",
            f"  Zipkin      http://{host}:{port_of(zipkin)}/api/v2/spans",
            f"  store       {config.store.redacted_dsn()}",
        ]
        print("\n".join(lines), flush=True)

    await run(listeners, announce, ingest)


async def _query(config: QueryProcessConfig, store: ClickHouseStore, ui: socket.socket) -> None:
    def health() -> dict[str, Any]:
        return {"store": config.store.redacted_dsn(), "schemaVersion": store.schema_version()}

    app = ui_app(store, config.query, port_of(ui), health)
    http = guarded_http_protocol(config.header_timeout, config.body_timeout)
    # The UI app needs its lifespan: Dash registers its catch-all page route at start-up.
    listeners = [(http_server(app, http, lifespan="on"), ui)]

    def announce() -> None:
        base = f"http://{config.query.host}:{port_of(ui)}"
        lines = [
            "Tracehouse query API is ready",
            f"  UI + API    {base}/   (API docs: {base}/docs)",
            f"  store       {config.store.redacted_dsn()}",
        ]
        print("\n".join(lines), flush=True)

    await run(listeners, announce)
