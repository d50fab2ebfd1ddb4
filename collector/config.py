"""Collector settings: listening addresses, request limits, batching."""

from __future__ import annotations

from dataclasses import dataclass, field

from tracehouse.collector.window import TimeWindow
from tracehouse.storage import ConfigError

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class CollectorConfig:
    """A port of 0 takes any free port. Flushes happen at `flush_spans` queued spans or
    `flush_interval` seconds after the oldest queued request, whichever comes first; one
    insert carries at most `flush_spans` spans and `flush_bytes` bytes of OTLP payload.
    Beyond `max_queued_spans` requests are refused with a retryable 503 / UNAVAILABLE, and so
    they are while the oldest queued request has waited `max_queue_delay` seconds past its
    `flush_interval` (the store is behind).
    Batches the store refuses go to an on-disk spool of at most `spool_max_bytes`, replayed
    every `spool_retry_interval` seconds until the store takes them. With a spool, while
    an insert runs, up to `write_ahead` more batches are written to its write-ahead log and
    their senders answered before their insert (0: senders are answered once inserted). With `ingest_token` set,
    every ingest request must carry `Authorization: Bearer <token>`. Request bodies held at
    once (raw and inflated) are bounded by `max_inflight_bytes`; past it, retryable refusals.
    A client gets `header_timeout` seconds to send a request's headers and `body_timeout` more
    for its body (408 and the connection closed past either; `http_guard`). Each listener takes
    at most `max_concurrent_requests` ingest requests at once; past it, retryable refusals (the
    bound that keeps acknowledgements within seconds when a fleet of senders floods it)."""

    host: str = "127.0.0.1"
    otlp_http_port: int = 4318
    otlp_grpc_port: int = 4317
    zipkin_port: int = 9411
    max_body_bytes: int = 16 * MiB
    max_inflight_bytes: int = 256 * MiB
    max_concurrent_requests: int = 128
    flush_spans: int = 50_000
    flush_interval: float = 0.2
    flush_bytes: int = 12 * MiB
    flush_workers: int = 2
    write_ahead: int = 2
    max_queued_spans: int = 500_000
    max_queue_delay: float = 2.0
    spool_max_bytes: int = 1024 * MiB
    spool_retry_interval: float = 1.0
    ingest_token: str | None = field(default=None, repr=False)
    max_span_age: float = 7 * 86400.0
    max_span_ahead: float = 86400.0
    header_timeout: float = 10.0
    body_timeout: float = 30.0

    @property
    def window(self) -> TimeWindow:
        """Accepted span start times (older spans would fall to the store's TTL at insert)."""
        return TimeWindow(self.max_span_age, self.max_span_ahead)

    def validate(self) -> None:
        if self.ingest_token is not None and (
            len(self.ingest_token) < 8 or any(c.isspace() for c in self.ingest_token)
        ):
            raise ConfigError("ingest_token: must be at least 8 characters, without whitespace")
        for key in ("otlp_http_port", "otlp_grpc_port", "zipkin_port"):
            port = getattr(self, key)
            if not 0 <= port <= 65535:
                raise ConfigError(f"{key}: {port} is not a TCP port (0-65535; 0 takes any free port)")
        if self.max_body_bytes < 1024:
            raise ConfigError(f"max_body_bytes: {self.max_body_bytes} is too small (at least 1024)")
        if self.max_inflight_bytes < self.max_body_bytes:
            raise ConfigError(
                f"max_inflight_bytes: {self.max_inflight_bytes} is below max_body_bytes ({self.max_body_bytes})"
            )
        if self.max_concurrent_requests < 1:
            raise ConfigError(f"max_concurrent_requests: must be at least 1 (got {self.max_concurrent_requests})")
        if self.max_queued_spans < 1:  # before flush_spans: serve derives it from this one
            raise ConfigError(f"max_queued_spans: must be at least 1 (got {self.max_queued_spans})")
        if self.flush_spans < 1:
            raise ConfigError(f"flush_spans: must be at least 1 (got {self.flush_spans})")
        if self.flush_bytes < MiB:
            raise ConfigError(f"flush_bytes: {self.flush_bytes} is too small (at least 1 MiB)")
        if not 0 < self.max_queue_delay <= 300:
            raise ConfigError(f"max_queue_delay: must be in (0, 300] seconds (got {self.max_queue_delay})")
        if not 1 <= self.flush_workers <= 64:
            raise ConfigError(f"flush_workers: must be between 1 and 64 (got {self.flush_workers})")
        if not 0 <= self.write_ahead <= 64:
            raise ConfigError(f"write_ahead: must be between 0 and 64 (got {self.write_ahead})")
        if not 0 < self.flush_interval <= 60:
            raise ConfigError(f"flush_interval: must be in (0, 60] seconds (got {self.flush_interval})")
        if self.spool_max_bytes < MiB:
            raise ConfigError(f"spool_max_bytes: {self.spool_max_bytes} is too small (at least 1 MiB)")
        if not 0 < self.spool_retry_interval <= 300:
            raise ConfigError(f"spool_retry_interval: must be in (0, 300] seconds (got {self.spool_retry_interval})")
        if self.max_span_age <= 0 or self.max_span_ahead <= 0:
            raise ConfigError("max_span_age/max_span_ahead: must be positive seconds")
        for key in ("header_timeout", "body_timeout"):
            if not 0 < getattr(self, key) <= 3600:
                raise ConfigError(f"{key}: must be in (0, 3600] seconds (got {getattr(self, key)})")
        if self.max_queued_spans < self.flush_spans:
            raise ConfigError(
                f"max_queued_spans: {self.max_queued_spans} must be at least flush_spans ({self.flush_spans})"
            )
