"""`tracehouse serve`: collector, query API and UI in one process over one store.

The embedded store allows one owner per data directory, so everything that touches it
lives here. Shutdown (Ctrl-C, SIGTERM) stops the listeners, then flushes the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import uvicorn

from tracehouse.collector import (
    ByteBudget,
    IngestMetrics,
    Pipeline,
    Spool,
    build_grpc_server,
    build_otlp_http_app,
    build_zipkin_app,
)
from tracehouse.collector.breakers import BreakerSink
from tracehouse.config import ServeConfig
from tracehouse.dashboard import mount_dashboard
from tracehouse.instrumentation.breakers.wire import BreakerReport
from tracehouse.query import build_query_app
from tracehouse.query.auth import TokenGate
from tracehouse.query.zipkin_api import zipkin_router
from tracehouse.storage import ClickHouseStore, StorageError, open_store
from tracehouse.storage.lock import DataDirLock

log = logging.getLogger("tracehouse")


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to `serve` (several run in one loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def serve(config: ServeConfig) -> None:
    """Run until SIGINT/SIGTERM. Raises `StorageError`/`OSError` with a user-facing message."""
    lock = DataDirLock(config.data_dir)
    try:
        log.info("opening the store %s", config.store.redacted_dsn())
        store = open_store(config.store, writers=config.collector.flush_workers)
        try:
            log.info("store ready, schema version %d", store.schema_version())
            cc = config.collector
            sockets = Sockets(
                otlp_http=_bind(cc.host, cc.otlp_http_port, "--otlp-http-port"),
                zipkin=_bind(cc.host, cc.zipkin_port, "--zipkin-port"),
                ui=_bind(config.query.host, config.query.ui_port, "--ui-port"),
            )
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
        port: int = getattr(self, name).getsockname()[1]
        return port


def _bind(host: str, port: int, flag: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(
            f"cannot listen on {host}:{port} ({exc.strerror}); free the port or choose another with {flag}"
        ) from None
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


async def _serve(config: ServeConfig, store: ClickHouseStore, sockets: Sockets) -> None:
    cc = config.collector
    spool = Spool(config.data_dir / "spool", cc.spool_max_bytes)
    if len(spool):
        log.info("spool: %d batches (%d bytes) from an earlier run will be replayed", len(spool), spool.bytes)
    pipeline = Pipeline(store, cc, spool)
    metrics = IngestMetrics()
    metrics.watch(lambda: pipeline.queued_spans, lambda: pipeline.written_spans, spool)
    pipeline.flush_observer = metrics.flush_seconds.observe
    pipeline_task = asyncio.create_task(pipeline.run(), name="pipeline")
    budget = ByteBudget(cc.max_inflight_bytes)  # shared by every ingest protocol
    breaker_sink = BreakerSink(store)
    breaker_task = asyncio.create_task(breaker_sink.run(), name="breaker-sink")
    pullers = _pull_hystrix_streams(config, breaker_sink)
    grpc_server, grpc_port = build_grpc_server(pipeline, cc, metrics, budget)
    await grpc_server.start()

    def health() -> dict[str, Any]:
        return {
            "store": config.store.redacted_dsn(),
            "schemaVersion": store.schema_version(),
            "queuedSpans": pipeline.queued_spans,
            "storedSpans": pipeline.written_spans,
            "spooledBatches": len(spool),
        }

    query_app = build_query_app(store, health)
    if config.query.api_token:
        query_app.add_middleware(TokenGate, token=config.query.api_token)
    mount_dashboard(query_app, _self_url(config.query.host, sockets.port("ui")), config.query.api_token)
    # Zipkin's port answers Zipkin's read API too, as a Zipkin server does (Lens, Grafana).
    zipkin_app = build_zipkin_app(pipeline, cc, metrics, budget)
    zipkin_app.include_router(zipkin_router(store))
    # The UI app needs its lifespan: Dash registers its catch-all page route at start-up.
    apps = [
        (
            _uvicorn(build_otlp_http_app(pipeline, cc, metrics, budget, breaker_sink), cc.max_concurrent_requests),
            sockets.otlp_http,
        ),
        (_uvicorn(zipkin_app, cc.max_concurrent_requests), sockets.zipkin),
        (_uvicorn(query_app, lifespan="on"), sockets.ui),
    ]
    servers = [server for server, _ in apps]
    tasks = [asyncio.create_task(server.serve(sockets=[sock])) for server, sock in apps]
    stop = asyncio.Event()
    linking = asyncio.create_task(_link_forever(store, config.link_interval, stop), name="linker")
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    _announce(config, sockets, grpc_port)
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)

    # Refuse new spans and flush the queued ones first, so requests in flight get their
    # answer before the listeners wait for them to finish.
    log.info("shutting down: flushing %d queued spans, closing listeners", pipeline.queued_spans)
    await pipeline.close()
    for puller in pullers:
        puller.cancel()
    await breaker_sink.close()
    for server in servers:
        server.should_exit = True
    await grpc_server.stop(grace=5)
    await asyncio.gather(*tasks, return_exceptions=True)
    await pipeline_task
    await breaker_task
    await asyncio.gather(*pullers, return_exceptions=True)
    await linking
    stopped.cancel()
    log.info("stopped; %d spans stored since start", pipeline.written_spans)


def _pull_hystrix_streams(config: ServeConfig, sink: BreakerSink) -> list[asyncio.Task[None]]:
    """Turbine classic: read the configured hystrix.streams into the breaker store."""
    if not config.hystrix_streams and config.hystrix_streams_file is None:
        return []
    from tracehouse.collector.hystrix_pull import HystrixPuller, parse_target, read_targets_file

    targets = [parse_target(text) for text in config.hystrix_streams]
    if config.hystrix_streams_file is not None:
        targets.extend(read_targets_file(config.hystrix_streams_file))
    if not targets:
        return []

    async def store_pulled(report: BreakerReport) -> None:
        await sink.submit(report, "pull")

    log.info("pulling %d hystrix.stream target(s)", len(targets))
    return [asyncio.create_task(HystrixPuller(targets, store_pulled).run(), name="hystrix-pull")]


async def _link_forever(store: ClickHouseStore, interval: float, stop: asyncio.Event) -> None:
    """Link dependencies every `interval` seconds: the last hour at start, then the minutes
    that inserts touched since the previous run, however old (late spans, spool replays).
    Never raises."""
    watermark = time.time_ns() // 10**6
    try:
        await asyncio.to_thread(store.link, time.time_ns() - 3600 * 10**9, time.time_ns())
    except StorageError as exc:
        log.warning("dependency linker: %s", exc)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
        if stop.is_set():
            break
        try:
            watermark = await asyncio.to_thread(store.link_recent, watermark)
        except StorageError as exc:
            log.warning("dependency linker: %s (retrying in %g s)", exc, interval)


def _self_url(host: str, port: int) -> str:
    """How this process reaches its own API (a wildcard bind is reached on loopback)."""
    reachable = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in reachable:
        reachable = f"[{reachable}]"
    return f"http://{reachable}:{port}"


def _uvicorn(app: Any, limit_concurrency: int | None = None, lifespan: Literal["on", "off"] = "off") -> _Server:
    """Beyond `limit_concurrency` open connections/requests uvicorn answers 503 itself."""
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan=lifespan,
        timeout_graceful_shutdown=5,
        access_log=False,
        limit_concurrency=limit_concurrency,
    )
    return _Server(config)


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
