"""The parts each Tracehouse server process is assembled from — `serve` takes both sides over
one store, `collector` the ingest side, `query` the UI side — and the one run loop that stops
them in order on SIGINT/SIGTERM. Never opens, creates or migrates a store: it is handed one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal

import uvicorn
from fastapi import FastAPI

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
from tracehouse.collector.http_guard import guarded_http_protocol
from tracehouse.config import IngestSettings
from tracehouse.dashboard import mount_dashboard
from tracehouse.dashboard.callback_guard import CallbackGuard
from tracehouse.instrumentation.breakers.wire import BreakerReport
from tracehouse.query import QueryConfig, build_query_app
from tracehouse.query.auth import TokenGate
from tracehouse.storage import ClickHouseStore, StorageError, StoreBusy, linker

log = logging.getLogger("tracehouse")

Health = Callable[[], dict[str, Any]]


class QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to `run` (several run in one loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


Listener = tuple[QuietServer, socket.socket]


def bind(host: str, port: int, flag: str) -> socket.socket:
    """A listening socket, bound before start-up so a busy port fails with a clear message."""
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


def port_of(sock: socket.socket) -> int:
    port: int = sock.getsockname()[1]
    return port


def self_url(host: str, port: int) -> str:
    """How this process reaches its own API (a wildcard bind is reached on loopback)."""
    reachable = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in reachable:
        reachable = f"[{reachable}]"
    return f"http://{reachable}:{port}"


def http_server(app: Any, http: type[asyncio.Protocol], lifespan: Literal["on", "off"] = "off") -> QuietServer:
    """`http` bounds each connection (head size, head and body deadlines); the ingest apps
    bound their requests in flight themselves (`RequestLimit`, 503 with Retry-After)."""
    config = uvicorn.Config(
        app, log_level="warning", lifespan=lifespan, timeout_graceful_shutdown=5, access_log=False, http=http
    )
    return QuietServer(config)


def ui_app(store: ClickHouseStore, config: QueryConfig, ui_port: int, health: Health) -> FastAPI:
    """The query API with the dashboard mounted at `/`, behind the API token if one is set."""
    # The name it was told to bind (`--host myhost`, 127.0.1.1 on Debian) is its own: the dashboard's
    # client calls it by that name (`self_url`), and so does the operator (review: 421 for both).
    app = build_query_app(store, health, allowed_hosts=(*config.allowed_hosts, config.host))
    mount_dashboard(app, self_url(config.host, ui_port), config.api_token)
    # Outside Dash's own middleware, which keeps the request it was handed for the callback;
    # inside the token gate, so strangers get a 401 first.
    app.add_middleware(CallbackGuard)
    if config.api_token:
        app.add_middleware(TokenGate, token=config.api_token)
    return app


class Ingest:
    """The collector side, in the running event loop: pipeline and spool, breaker sink,
    hystrix.stream pulls, the OTLP/gRPC server, and (from `run`) the dependency linker."""

    def __init__(self, store: ClickHouseStore, settings: IngestSettings) -> None:
        cc = self.config = settings.collector
        self.store = store
        self.link_interval = settings.link_interval
        self.spool = Spool(settings.data_dir / "spool", cc.spool_max_bytes)
        if len(self.spool):
            log.info(
                "spool: %d batches (%d bytes) from an earlier run will be replayed", len(self.spool), self.spool.bytes
            )
        self.pipeline = Pipeline(store, cc, self.spool)
        self.metrics = IngestMetrics()
        self.metrics.watch(
            lambda: self.pipeline.queued_spans,
            lambda: self.pipeline.written_spans,
            lambda: self.pipeline.busy_retries,
            lambda: self.pipeline.set_aside_spans,
            self.spool,
        )
        self.pipeline.flush_observer = self.metrics.flush_seconds.observe
        self._pipeline_task = asyncio.create_task(self.pipeline.run(), name="pipeline")
        self.budget = ByteBudget(cc.max_inflight_bytes)  # shared by every ingest protocol
        self.metrics.watch_bytes_held(lambda: self.budget.used)
        self.breakers = BreakerSink(store)
        self._breaker_task = asyncio.create_task(self.breakers.run(), name="breaker-sink")
        self._pullers = _pull_hystrix_streams(settings, self.breakers, self.metrics)
        self.grpc_server, self.grpc_port = build_grpc_server(self.pipeline, cc, self.metrics, self.budget)
        self.http = guarded_http_protocol(cc.header_timeout, cc.body_timeout)
        self._stopping = asyncio.Event()
        self._linking: asyncio.Task[None] | None = None
        self._purging = (
            asyncio.create_task(_purge_forever(store, self._stopping), name="allocator-purge")
            if store.config.embedded
            else None
        )

    async def start(self) -> None:
        await self.grpc_server.start()

    def health(self) -> dict[str, Any]:
        """Still 200 while the store fails (the spool takes the data; a restart would not help), but
        `status` says so: it read "ok" while a full disk refused every insert (operator review)."""
        failing = self.pipeline.store_failing
        return {
            "status": "degraded: the store refuses writes, batches are spooled" if failing else "ok",
            "storeWrites": "failing" if failing else "ok",
            "queuedSpans": self.pipeline.queued_spans,
            "storedSpans": self.pipeline.written_spans,
            "spooledBatches": len(self.spool),
        }

    def otlp_http_app(self) -> FastAPI:
        """`POST /v1/traces`, `POST /v1/breakers`, `GET /metrics`."""
        return build_otlp_http_app(self.pipeline, self.config, self.metrics, self.budget, self.breakers)

    def zipkin_app(self) -> FastAPI:
        return build_zipkin_app(self.pipeline, self.config, self.metrics, self.budget)

    def start_linker(self) -> None:
        self._linking = asyncio.create_task(
            _link_forever(self.store, self.link_interval, self._stopping, self.metrics), name="linker"
        )

    async def refuse(self) -> None:
        """Refuse new spans and flush the queued ones, so requests in flight get their answer
        before the listeners wait for them to finish."""
        log.info("shutting down: flushing %d queued spans, closing listeners", self.pipeline.queued_spans)
        self._stopping.set()
        await self.pipeline.close()
        for puller in self._pullers:
            puller.cancel()
        await self.breakers.close()

    async def stop_grpc(self) -> None:
        await self.grpc_server.stop(grace=5)

    async def drain(self) -> None:
        await self._pipeline_task
        await self._breaker_task
        await asyncio.gather(*self._pullers, return_exceptions=True)
        while self._linking is not None and not self._linking.done():
            # A linker statement can run for minutes at full ingest: cancel it (again, should
            # the next one have started meanwhile) rather than keep SIGTERM waiting.
            with contextlib.suppress(StorageError):
                await asyncio.to_thread(self.store.cancel_linking)
            await asyncio.wait([self._linking], timeout=1)
        if self._purging is not None:
            await self._purging
        log.info("stopped; %d spans stored since start", self.pipeline.written_spans)


async def run(listeners: list[Listener], announce: Callable[[], None], ingest: Ingest | None = None) -> None:
    """Serve `listeners` (and `ingest`'s linker) until SIGINT/SIGTERM or a listener ends, then
    stop: ingest refuses and flushes first, then the listeners close, then ingest drains."""
    tasks = [asyncio.create_task(server.serve(sockets=[sock])) for server, sock in listeners]
    if ingest is not None:
        ingest.start_linker()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    announce()
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)

    watchdog = asyncio.create_task(_report_slow_shutdown(), name="shutdown-watchdog")
    try:
        if ingest is not None:
            await ingest.refuse()
        else:
            log.info("shutting down: closing listeners")
        for server, _ in listeners:
            server.should_exit = True
        if ingest is not None:
            await ingest.stop_grpc()
        await asyncio.gather(*tasks, return_exceptions=True)
        if ingest is not None:
            log.info("listeners closed; waiting for the last inserts and the dependency linker")
            await ingest.drain()
    finally:
        watchdog.cancel()
        stopped.cancel()


#: A shutdown that takes longer than this logs what it still waits for (and again as often).
SLOW_SHUTDOWN_S = 20.0


async def _report_slow_shutdown() -> None:
    """Every `SLOW_SHUTDOWN_S` until cancelled, log where each running task waits: a stop that
    hangs says on what, instead of being killed by its supervisor without a word."""
    waited = 0.0
    while True:
        await asyncio.sleep(SLOW_SHUTDOWN_S)
        waited += SLOW_SHUTDOWN_S
        me = asyncio.current_task()
        where = "; ".join(f"{t.get_name()} at {_awaiting(t)}" for t in asyncio.all_tasks() if t is not me)
        log.warning("still shutting down after %.0f s, waiting for: %s", waited, where or "nothing")


def _awaiting(task: asyncio.Task[Any]) -> str:
    """Where `task` is suspended: its innermost coroutine frame outside asyncio itself, as
    file:line (function)."""
    where = "?"
    coro: Any = task.get_coro()
    while (frame := getattr(coro, "cr_frame", None)) is not None:
        if not frame.f_code.co_filename.startswith(_ASYNCIO_DIR):
            where = f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno} ({frame.f_code.co_name})"
        coro = coro.cr_await
    return where


_ASYNCIO_DIR = asyncio.__file__.rsplit("/", 1)[0] + "/"


def _pull_hystrix_streams(
    settings: IngestSettings, sink: BreakerSink, metrics: IngestMetrics
) -> list[asyncio.Task[None]]:
    """Turbine classic: read the configured hystrix.streams into the breaker store; their counters
    in `/metrics`."""
    if not settings.hystrix_streams and settings.hystrix_streams_file is None:
        return []
    from tracehouse.collector.hystrix_pull import HystrixPuller, parse_target, read_targets_file

    targets = [parse_target(text) for text in settings.hystrix_streams]
    if settings.hystrix_streams_file is not None:
        targets.extend(read_targets_file(settings.hystrix_streams_file))
    if not targets:
        return []

    async def store_pulled(report: BreakerReport) -> None:
        await sink.submit(report, "pull")

    log.info("pulling %d hystrix.stream target(s)", len(targets))
    puller = HystrixPuller(targets, store_pulled)
    metrics.watch_puller(puller)
    return [asyncio.create_task(puller.run(), name="hystrix-pull")]


#: How often the embedded engine hands its freed pages back to the system (`_purge_forever`).
PURGE_INTERVAL_S = 1.0


async def _purge_forever(store: ClickHouseStore, stop: asyncio.Event) -> None:
    """Every `PURGE_INTERVAL_S` until `stop`, return the pages the embedded engine freed to the
    system: under sustained ingest its allocator otherwise holds seconds' worth of them on top of
    what the engine uses. Never raises; gives up (once logged) if the engine cannot."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PURGE_INTERVAL_S)
        if stop.is_set():  # shutting down: the store closes next, nothing to hand back for
            break
        try:
            await asyncio.to_thread(store.release_freed_memory)
        except StorageError as exc:
            log.warning("%s; the engine's freed memory is left to its allocator from now on", exc)
            return


#: After a linker run the store refused for memory — beside two inserts and merges at capacity
#: the engine's cap can be full for a moment — the next run comes this soon, then twice as late
#: each time again, up to `--link-interval`: at 50k spans/s for 5 minutes, 2 of 5 runs failed so,
#: leaving the map a minute or two behind while the load lasted. Each such run also joins half as
#: many spans per slice as the one before (`linker.SPANS_PER_SLICE` down to `MIN_SPANS_PER_SLICE`):
#: more, smaller passes that need less of the engine's memory at once.
LINKER_BUSY_PAUSE_S = 5.0


async def _link_forever(store: ClickHouseStore, interval: float, stop: asyncio.Event, metrics: IngestMetrics) -> None:
    """Link dependencies every `interval` seconds: the last hour at start, then the minutes
    that inserts touched since the previous run, however old (late spans, spool replays).
    Safe beside other collectors doing the same (see `tracehouse.storage.linker`). Never raises;
    each run is counted in `metrics` (`tracehouse_linker_runs_total`, `tracehouse_linker_seconds`)."""
    watermark = time.time_ns() // 10**6
    busy = 0  # runs refused for memory in a row

    def pause() -> float:
        return min(interval, LINKER_BUSY_PAUSE_S * 2 ** (busy - 1)) if busy else interval

    async def run(job: Callable[[], int | None]) -> int | None:
        nonlocal busy
        started = time.monotonic()
        try:
            done = await asyncio.to_thread(job)
        except StorageError as exc:
            busy = busy + 1 if isinstance(exc, StoreBusy) else 0
            if stop.is_set():  # its statement was cancelled by the shutdown (`Ingest.drain`)
                log.info("dependency linker stopped: %s", exc)
            else:
                log.warning("dependency linker: %s (next run in %g s)", exc, pause())
                metrics.linker_runs.labels("failed").inc()
            return None
        busy = 0
        metrics.linker_runs.labels("linked").inc()
        metrics.linker_seconds.observe(time.monotonic() - started)
        return done

    # The last hour first, until a run has linked it (a refused one is tried again, in smaller
    # slices, like any other); then what inserts touched since the start.
    backlog: tuple[int, int] | None = (time.time_ns() - 3600 * 10**9, time.time_ns())

    def link_backlog(span: tuple[int, int], spans_per_slice: int) -> int:
        store.link(*span, spans_per_slice)
        return watermark

    while True:
        spans_per_slice = max(linker.MIN_SPANS_PER_SLICE, linker.SPANS_PER_SLICE >> min(busy, 16))
        if backlog is not None:
            if await run(functools.partial(link_backlog, backlog, spans_per_slice)) is not None:
                backlog = None
        else:
            watermark = await run(functools.partial(store.link_recent, watermark, spans_per_slice)) or watermark
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), pause())
        if stop.is_set():
            break
