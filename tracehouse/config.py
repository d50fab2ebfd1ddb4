"""The all-in-one server's configuration: one object composed of each component's."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracehouse.collector import CollectorConfig
from tracehouse.options import Option
from tracehouse.query import QueryConfig
from tracehouse.storage import ConfigError, StoreConfig

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
    Option("--ttl-days", "days spans are kept", 7, int, "N"),
    Option("--flush-interval", "seconds a request may wait to be batched with others", 0.2, float, "SECONDS"),
    Option("--flush-workers", "inserts that may run at once", 2, int, "N"),
    Option("--max-queued-spans", "spans waiting to be stored before senders get 503 + Retry-After", 500_000, int, "N"),
    Option(
        "--max-inflight-bytes",
        "request bytes held at once (raw and inflated) before 503",
        256 * 1024 * 1024,
        int,
        "BYTES",
    ),
    Option("--spool-max-bytes", "on-disk spool bound for spans the store refuses", 1024 * 1024 * 1024, int, "BYTES"),
    Option(
        "--ingest-token",
        "require 'Authorization: Bearer TOKEN' on every ingest request",
        None,
        str,
        "TOKEN",
        "none (ingest open to whoever reaches the ports)",
    ),
    Option(
        "--api-token",
        "require 'Authorization: Bearer TOKEN' (or the cookie set by opening ?token=TOKEN) on the API and UI",
        None,
        str,
        "TOKEN",
        "none (API and UI open to whoever reaches the port)",
    ),
    Option("--link-interval", "seconds between runs of the dependency linker", 30.0, float, "SECONDS"),
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


@dataclass(frozen=True, slots=True)
class ServeConfig:
    data_dir: Path
    store: StoreConfig
    collector: CollectorConfig
    query: QueryConfig
    log_level: str = "info"
    link_interval: float = 30.0
    hystrix_streams: tuple[str, ...] = ()
    hystrix_streams_file: Path | None = None

    @classmethod
    def from_values(cls, v: dict[str, Any]) -> ServeConfig:
        collector = CollectorConfig(
            host=v["host"],
            otlp_http_port=v["otlp_http_port"],
            otlp_grpc_port=v["otlp_grpc_port"],
            zipkin_port=v["zipkin_port"],
            flush_interval=v["flush_interval"],
            flush_workers=v["flush_workers"],
            max_queued_spans=v["max_queued_spans"],
            flush_spans=min(50_000, v["max_queued_spans"]),
            max_inflight_bytes=v["max_inflight_bytes"],
            spool_max_bytes=v["spool_max_bytes"],
            ingest_token=v["ingest_token"],
            max_span_age=v["ttl_days"] * 86400.0,  # older spans would fall to the TTL at insert
        )
        return cls(
            data_dir=Path(v["data_dir"]).resolve(),
            store=StoreConfig(dsn=v["clickhouse"], ttl_days=v["ttl_days"]),
            collector=collector,
            query=QueryConfig(host=v["host"], ui_port=v["ui_port"], api_token=v["api_token"]),
            log_level=v["log_level"],
            link_interval=v["link_interval"],
            hystrix_streams=tuple(t for t in v["hystrix_streams"].replace(",", " ").split() if t),
            hystrix_streams_file=v["hystrix_streams_file"],
        )

    def validate(self) -> None:
        """Raise `ConfigError` naming the first bad setting."""
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"log_level: {self.log_level!r} is not one of {', '.join(LOG_LEVELS)}")
        if not 0.1 <= self.link_interval <= 3600:
            raise ConfigError(f"link_interval: must be between 0.1 and 3600 seconds (got {self.link_interval})")
        if self.hystrix_streams_file is not None and not self.hystrix_streams_file.is_file():
            raise ConfigError(f"hystrix_streams_file: {self.hystrix_streams_file} is not a readable file")
        self.store.validate()
        self.collector.validate()
        self.query.validate()
        ports = {
            "otlp_http_port": self.collector.otlp_http_port,
            "otlp_grpc_port": self.collector.otlp_grpc_port,
            "ui_port": self.query.ui_port,
        }
        taken = [p for p in ports.values() if p]
        if len(taken) != len(set(taken)):
            raise ConfigError(f"ports: two listeners share a port ({ports})")
