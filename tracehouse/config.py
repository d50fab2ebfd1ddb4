"""Configuration of the server processes — all-in-one `serve`, `collector`, `query` — each one
object composed of its components' configs, from one set of option declarations."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from tracehouse.collector import CollectorConfig
from tracehouse.options import Option, byte_size
from tracehouse.query import QueryConfig
from tracehouse.storage import ConfigError, StoreConfig
from tracehouse.storage.config import DEFAULT_TTL_DAYS

LOG_LEVELS = ("debug", "info", "warning", "error")


def default_data_dir(_: dict[str, Any]) -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "tracehouse"


def default_dsn(values: dict[str, Any]) -> str:
    return f"chdb://{Path(values['data_dir']).resolve() / 'clickhouse'}"


SERVE_OPTIONS = (
    Option(
        "--data-dir",
        "directory for the embedded store and spool; one process owns it",
        default_data_dir,
        Path,
        "DIR",
        "$XDG_DATA_HOME/tracehouse or ~/.local/share/tracehouse",
    ),
    Option(
        "--clickhouse",
        "ClickHouse DSN: chdb:///abs/path (embedded) or http(s)://user:pass@host:8123/db",
        default_dsn,
        str,
        "DSN",
        "chdb://<data-dir>/clickhouse, embedded",
    ),
    Option("--host", "address every listener binds to", "127.0.0.1", str, "ADDR"),
    Option("--otlp-grpc-port", "OTLP/gRPC receiver port (0: any free port)", 4317, int, "PORT"),
    Option("--otlp-http-port", "OTLP/HTTP receiver port, POST /v1/traces (0: any free port)", 4318, int, "PORT"),
    Option("--zipkin-port", "Zipkin v2 receiver port, POST /api/v2/spans (0: any free port)", 9411, int, "PORT"),
    Option("--ui-port", "query API and dashboard port (0: any free port)", 16686, int, "PORT"),
    Option(
        "--ttl-days",
        "days spans are kept; given, an existing store's tables are changed to it (ALTER … MODIFY TTL)",
        None,
        int,
        "N",
        f"{DEFAULT_TTL_DAYS} for a new store; an existing store keeps its own",
    ),
    Option(
        "--store-memory-limit",
        "bytes the embedded ClickHouse may use (max_server_memory_usage); past it an insert is tried again "
        "alone, then spooled, and queries answer 503; no new merge starts while merges hold 40 percent of it; "
        "0: the engine's default (0.9 of RAM). Ignored for a ClickHouse server",
        768 * 1024 * 1024,
        byte_size,
        "BYTES",
        "768 MiB",
    ),
    Option("--flush-interval", "seconds a request may wait to be batched with others", 0.2, float, "SECONDS"),
    Option("--flush-workers", "inserts that may run at once", 2, int, "N"),
    Option(
        "--flush-bytes",
        "bytes of OTLP payload one insert carries at most (the embedded engine needs ~25 times that in memory)",
        12 * 1024 * 1024,
        byte_size,
        "BYTES",
        "12 MiB",
    ),
    Option(
        "--write-ahead",
        "batches whose senders are answered once the batch is in the spool's write-ahead log (fsync'd), "
        "before its insert, while another insert runs or when the batch merges several requests; "
        "0: senders are answered once inserted",
        2,
        int,
        "N",
    ),
    Option("--max-queued-spans", "spans waiting to be stored before senders get 503 + Retry-After", 500_000, int, "N"),
    Option(
        "--max-concurrent-requests",
        "ingest requests in flight per listener (HTTP and gRPC) before 503 + Retry-After / UNAVAILABLE",
        128,
        int,
        "N",
    ),
    Option(
        "--max-inflight-bytes",
        "request bytes held at once (raw and inflated) before 503",
        256 * 1024 * 1024,
        byte_size,
        "BYTES",
        "256 MiB",
    ),
    Option(
        "--header-timeout",
        "seconds a client may take to send a request's headers (then 408, closed)",
        10.0,
        float,
        "SECONDS",
    ),
    Option(
        "--body-timeout",
        "seconds a client may take to send a request's body (then 408, closed)",
        30.0,
        float,
        "SECONDS",
    ),
    Option(
        "--spool-max-bytes",
        "on-disk spool bound for spans the store refuses",
        1024 * 1024 * 1024,
        byte_size,
        "BYTES",
        "1 GiB",
    ),
    Option(
        "--ingest-token",
        "require 'Authorization: Bearer TOKEN' on every ingest request (at least 8 characters, no whitespace)",
        None,
        str,
        "TOKEN",
        "none (ingest open to whoever reaches the ports)",
    ),
    Option(
        "--api-token",
        "require 'Authorization: Bearer TOKEN' (or the cookie set by opening ?token=TOKEN) on the API and UI "
        "(at least 8 characters, no whitespace)",
        None,
        str,
        "TOKEN",
        "none (API and UI open to whoever reaches the port)",
    ),
    Option(
        "--allowed-hosts",
        "host names the UI and API answer on a loopback address without --api-token, besides 127.0.0.1, "
        "localhost and [::1] (comma-separated; * for any): other Host headers get 421, against DNS rebinding",
        "",
        str,
        "NAMES",
        "none",
    ),
    Option("--link-interval", "seconds between runs of the dependency linker", 60.0, float, "SECONDS"),
    Option(
        "--hystrix-streams",
        "hystrix.stream URLs to pull, comma-separated, each [CLUSTER=]URL; dns+http://name:port/path "
        "follows every address of a DNS name",
        "",
        str,
        "TARGETS",
        "none",
    ),
    Option("--hystrix-streams-file", "file of hystrix.stream targets, one per line", None, Path, "FILE", "none"),
    Option("--log-level", f"one of {', '.join(LOG_LEVELS)}", "info", str, "LEVEL"),
)


#: The options of `tracehouse serve` that only the query API and UI use.
_UI_OPTIONS = frozenset({"--ui-port", "--api-token", "--allowed-hosts"})
#: Options of `serve` alone: the embedded store is only ever serve's.
_EMBEDDED_OPTIONS = frozenset({"--store-memory-limit"})
#: Options of every HTTP listener (connection deadlines), whichever side it is on.
_HTTP_OPTIONS = frozenset({"--header-timeout", "--body-timeout"})
_SERVER_DSN_HELP = "ClickHouse server DSN, http(s)://user:pass@host:8123/db (required; the embedded store is serve's)"


def _server_options(command: str, keep: Callable[[Option], bool]) -> tuple[Option, ...]:
    """The serve options `keep` selects, declared once: only `--clickhouse` has no default (a
    server must be named) and `--data-dir` holds a collector's spool alone."""
    chosen = []
    for option in SERVE_OPTIONS:
        if not keep(option):
            continue
        if option.flag == "--clickhouse":
            option = replace(option, help=_SERVER_DSN_HELP, default=None, default_text="none")
        elif option.flag == "--data-dir":
            option = replace(option, help=f"directory of this {command}'s spool; one process owns it")
        chosen.append(option)
    return tuple(chosen)


COLLECTOR_OPTIONS = _server_options("collector", lambda o: o.flag not in _UI_OPTIONS | _EMBEDDED_OPTIONS)
QUERY_OPTIONS = _server_options(
    "query", lambda o: o.flag in _UI_OPTIONS | _HTTP_OPTIONS | {"--clickhouse", "--host", "--log-level"}
)


def ttl_days(v: dict[str, Any]) -> int:
    """`--ttl-days`, or the days a new store keeps when it is not given."""
    return DEFAULT_TTL_DAYS if v["ttl_days"] is None else int(v["ttl_days"])


def kept_by_store(config: CollectorConfig, store: StoreConfig, kept: int | None) -> CollectorConfig:
    """Without `--ttl-days`, spans are accepted as old as the store keeps them (`kept` days, its
    spans table's TTL; None: unknown), not the default's 7."""
    if store.retention_given or kept is None or kept == store.ttl_days:
        return config
    return replace(config, max_span_age=kept * 86400.0)


def collector_config(v: dict[str, Any]) -> CollectorConfig:
    """The collector's settings from resolved option values (serve's or the collector's)."""
    return CollectorConfig(
        host=v["host"],
        otlp_http_port=v["otlp_http_port"],
        otlp_grpc_port=v["otlp_grpc_port"],
        zipkin_port=v["zipkin_port"],
        flush_interval=v["flush_interval"],
        flush_workers=v["flush_workers"],
        flush_bytes=v["flush_bytes"],
        write_ahead=v["write_ahead"],
        max_queued_spans=v["max_queued_spans"],
        flush_spans=min(50_000, v["max_queued_spans"]),
        max_inflight_bytes=v["max_inflight_bytes"],
        max_concurrent_requests=v["max_concurrent_requests"],
        spool_max_bytes=v["spool_max_bytes"],
        ingest_token=v["ingest_token"],
        max_span_age=ttl_days(v) * 86400.0,  # older spans would fall to the TTL at insert (see `kept_by_store`)
        header_timeout=v["header_timeout"],
        body_timeout=v["body_timeout"],
    )


def _targets(text: str) -> tuple[str, ...]:
    return tuple(t for t in text.replace(",", " ").split() if t)


@dataclass(frozen=True, slots=True)
class ServeConfig:
    data_dir: Path
    store: StoreConfig
    collector: CollectorConfig
    query: QueryConfig
    log_level: str = "info"
    link_interval: float = 60.0
    hystrix_streams: tuple[str, ...] = ()
    hystrix_streams_file: Path | None = None

    @classmethod
    def from_values(cls, v: dict[str, Any]) -> ServeConfig:
        return cls(
            data_dir=Path(v["data_dir"]).resolve(),
            store=StoreConfig(
                dsn=v["clickhouse"],
                ttl_days=ttl_days(v),
                memory_limit=v["store_memory_limit"],
                retention_given=v["ttl_days"] is not None,
            ),
            collector=collector_config(v),
            query=QueryConfig(
                host=v["host"],
                ui_port=v["ui_port"],
                api_token=v["api_token"],
                allowed_hosts=tuple(v["allowed_hosts"].replace(",", " ").split()),
            ),
            log_level=v["log_level"].lower(),
            link_interval=v["link_interval"],
            hystrix_streams=_targets(v["hystrix_streams"]),
            hystrix_streams_file=v["hystrix_streams_file"],
        )

    def validate(self) -> None:
        """Raise `ConfigError` naming the first bad setting."""
        _check_ingest(self)
        self.store.validate()
        self.collector.validate()
        self.query.validate()
        ports = {
            "otlp_http_port": self.collector.otlp_http_port,
            "otlp_grpc_port": self.collector.otlp_grpc_port,
            "zipkin_port": self.collector.zipkin_port,
            "ui_port": self.query.ui_port,
        }
        taken = [p for p in ports.values() if p]
        if len(taken) != len(set(taken)):
            raise ConfigError(f"ports: two listeners share a port ({ports})")


@dataclass(frozen=True, slots=True)
class CollectorProcessConfig:
    """`tracehouse collector`: the ingest side alone, against a ClickHouse server. Any number
    may run against one server or cluster; each needs a data directory (its spool) of its own."""

    data_dir: Path
    store: StoreConfig
    collector: CollectorConfig
    log_level: str = "info"
    link_interval: float = 60.0
    hystrix_streams: tuple[str, ...] = ()
    hystrix_streams_file: Path | None = None

    @classmethod
    def from_values(cls, v: dict[str, Any]) -> CollectorProcessConfig:
        return cls(
            data_dir=Path(v["data_dir"]).resolve(),
            store=StoreConfig(
                dsn=v["clickhouse"] or "", ttl_days=ttl_days(v), retention_given=v["ttl_days"] is not None
            ),
            collector=collector_config(v),
            log_level=v["log_level"].lower(),
            link_interval=v["link_interval"],
            hystrix_streams=_targets(v["hystrix_streams"]),
            hystrix_streams_file=v["hystrix_streams_file"],
        )

    def validate(self) -> None:
        """Raise `ConfigError` naming the first bad setting."""
        require_server(self.store, "collector")
        _check_ingest(self)
        self.collector.validate()
        ports = {
            "otlp_http_port": self.collector.otlp_http_port,
            "otlp_grpc_port": self.collector.otlp_grpc_port,
            "zipkin_port": self.collector.zipkin_port,
        }
        taken = [p for p in ports.values() if p]
        if len(taken) != len(set(taken)):
            raise ConfigError(f"ports: two listeners share a port ({ports})")


@dataclass(frozen=True, slots=True)
class QueryProcessConfig:
    """`tracehouse query`: the query API and the dashboard on the UI port, against a ClickHouse
    server; reads only (the schema is `tracehouse schema apply`'s, the data the collectors')."""

    store: StoreConfig
    query: QueryConfig
    log_level: str = "info"
    header_timeout: float = 10.0
    body_timeout: float = 30.0

    @classmethod
    def from_values(cls, v: dict[str, Any]) -> QueryProcessConfig:
        return cls(
            store=StoreConfig(dsn=v["clickhouse"] or ""),
            query=QueryConfig(
                host=v["host"],
                ui_port=v["ui_port"],
                api_token=v["api_token"],
                allowed_hosts=tuple(v["allowed_hosts"].replace(",", " ").split()),
            ),
            log_level=v["log_level"].lower(),
            header_timeout=v["header_timeout"],
            body_timeout=v["body_timeout"],
        )

    def validate(self) -> None:
        """Raise `ConfigError` naming the first bad setting."""
        require_server(self.store, "query")
        _check_log_level(self.log_level)
        for key in ("header_timeout", "body_timeout"):
            if not 0 < getattr(self, key) <= 3600:
                raise ConfigError(f"{key}: must be in (0, 3600] seconds (got {getattr(self, key)})")
        self.query.validate()


def require_server(store: StoreConfig, command: str) -> None:
    """`collector` and `query` share a store only through a ClickHouse server: the embedded
    store belongs to one process, which is `serve`."""
    if not store.dsn:
        raise ConfigError(
            f"clickhouse: `tracehouse {command}` needs a ClickHouse server: "
            "--clickhouse http(s)://user:pass@host:8123/db (or TRACEHOUSE_CLICKHOUSE)"
        )
    if store.embedded:
        raise ConfigError(
            f"clickhouse: `tracehouse {command}` cannot use the embedded store {store.dsn}: one process owns "
            "it, so collector, query API and UI share it only inside `tracehouse serve`. Run that, or give "
            f"`tracehouse {command}` a ClickHouse server: --clickhouse http(s)://user:pass@host:8123/db"
        )
    store.validate()


class IngestSettings(Protocol):
    """What the ingest side needs of a process's config (`ServeConfig`, `CollectorProcessConfig`)."""

    @property
    def data_dir(self) -> Path: ...
    @property
    def collector(self) -> CollectorConfig: ...
    @property
    def log_level(self) -> str: ...
    @property
    def link_interval(self) -> float: ...
    @property
    def hystrix_streams(self) -> tuple[str, ...]: ...
    @property
    def hystrix_streams_file(self) -> Path | None: ...


def _check_ingest(config: IngestSettings) -> None:
    _check_log_level(config.log_level)
    if not 0.1 <= config.link_interval <= 3600:
        raise ConfigError(f"link_interval: must be between 0.1 and 3600 seconds (got {config.link_interval})")
    if config.hystrix_streams_file is not None and not config.hystrix_streams_file.is_file():
        raise ConfigError(f"hystrix_streams_file: {config.hystrix_streams_file} is not a readable file")
    from tracehouse.collector.hystrix_pull import distinct_instances, parse_target

    try:
        distinct_instances([parse_target(target) for target in config.hystrix_streams])
    except ValueError as exc:
        raise ConfigError(f"hystrix_streams: {exc}") from None


def _check_log_level(level: str) -> None:
    if level not in LOG_LEVELS:
        raise ConfigError(f"log_level: {level!r} is not one of {', '.join(LOG_LEVELS)}")
