"""`tracehouse serve`: collector, query API and UI in one process over one store.

The embedded store allows one owner per data directory, so everything that touches it
lives here. Shutdown (Ctrl-C, SIGTERM) stops the listeners, then flushes the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass, replace
from typing import Any

from tracehouse.config import ServeConfig, kept_by_store
from tracehouse.query.app import build_zipkin_read_app
from tracehouse.storage import ClickHouseStore, open_store
from tracehouse.storage.lock import DataDirLock
from tracehouse.storage.migrate import kept_days
from tracehouse.wiring import Ingest, bind, http_server, port_of, run, ui_app

log = logging.getLogger("tracehouse")


def serve(config: ServeConfig) -> None:
    """Run until SIGINT/SIGTERM. Raises `StorageError`/`OSError` with a user-facing message."""
    lock = DataDirLock(config.data_dir)
    try:
        # Before the store: a busy port fails at once, not after creating or migrating a store.
        with contextlib.ExitStack() as listening:
            cc = config.collector
            sockets = Sockets(
                otlp_http=listening.enter_context(bind(cc.host, cc.otlp_http_port, "--otlp-http-port")),
                zipkin=listening.enter_context(bind(cc.host, cc.zipkin_port, "--zipkin-port")),
                ui=listening.enter_context(bind(config.query.host, config.query.ui_port, "--ui-port")),
            )
            if cc.otlp_grpc_port:  # gRPC binds its own socket once the pipeline exists: tried here first
                bind(cc.host, cc.otlp_grpc_port, "--otlp-grpc-port").close()
            log.info("opening the store %s", config.store.redacted_dsn())
            store = open_store(config.store, writers=config.collector.flush_workers)
            try:
                log.info("store ready, schema version %d", store.schema_version())
                kept = kept_days(store.client()).get("otel_traces")
                config = replace(config, collector=kept_by_store(config.collector, config.store, kept))
                asyncio.run(_serve(config, store, sockets))
            finally:
                store.close()
    finally:
        lock.release()


@dataclass(frozen=True, slots=True)
class Sockets:
    """The HTTP listeners, bound before start-up so a busy port fails with a clear message."""

    otlp_http: socket.socket
    zipkin: socket.socket
    ui: socket.socket

    def port(self, name: str) -> int:
        return port_of(getattr(self, name))


async def _serve(config: ServeConfig, store: ClickHouseStore, sockets: Sockets) -> None:
    ingest = Ingest(store, config)
    await ingest.start()

    def health() -> dict[str, Any]:
        return {
            "store": config.store.redacted_dsn(),
            "schemaVersion": store.schema_version(),
            "storeMemoryLimitBytes": store.memory_limit(),
            **ingest.health(),
        }

    query_app = ui_app(store, config.query, sockets.port("ui"), health)
    # Zipkin's port answers Zipkin's read API too, as a Zipkin server does (Lens, Grafana),
    # behind the API token; the receiver's own routes come first.
    zipkin_app = ingest.zipkin_app()
    zipkin_app.mount(
        "/", build_zipkin_read_app(store, config.query.api_token, (*config.query.allowed_hosts, config.query.host))
    )
    # The UI app needs its lifespan: Dash registers its catch-all page route at start-up.
    listeners = [
        (http_server(ingest.otlp_http_app(), ingest.http), sockets.otlp_http),
        (http_server(zipkin_app, ingest.http), sockets.zipkin),
        (http_server(query_app, ingest.http, lifespan="on"), sockets.ui),
    ]
    await run(listeners, lambda: _announce(config, sockets, ingest.grpc_port), ingest)


def _announce(config: ServeConfig, sockets: Sockets, grpc_port: int) -> None:
    host = config.query.host
    ui_port = sockets.port("ui")
    lines = [
        "Tracehouse is ready",
        f"  UI + API    http://{host}:{ui_port}/   (API docs: http://{host}:{ui_port}/docs)",
        f"  OTLP/HTTP   http://{host}:{sockets.port('otlp_http')}/v1/traces",
        f"  OTLP/gRPC   {host}:{grpc_port}",
        f"  Zipkin      http://{host}:{sockets.port('zipkin')}/api/v2/spans",
        f"  store       {config.store.redacted_dsn()}",
    ]
    print("\n".join(lines), flush=True)
