"""Storage: ClickHouse (embedded chDB or a server) behind small seams.

The only package that speaks SQL. Build a store with `open_store(StoreConfig(dsn))`;
the collector depends on `SpanWriter`, the query API on `TraceReader`.
"""

from tracehouse.storage.batch import COLUMNS, Attributes, OtlpPayload, SpanBatch
from tracehouse.storage.clickhouse import ClickHouseStore
from tracehouse.storage.config import StoreConfig
from tracehouse.storage.errors import (
    ConfigError,
    InvalidQuery,
    StorageError,
    StoreBusy,
    StoreLocked,
    StoreRejected,
    StoreUnavailable,
)
from tracehouse.storage.model import (
    MAX_TRACE_SPANS,
    AttributeFilter,
    CallStats,
    Dependencies,
    DependencyLink,
    Event,
    Link,
    Operation,
    OperationStats,
    RedPoint,
    RedQuery,
    Span,
    TraceQuery,
    TraceSummary,
)
from tracehouse.storage.seams import DependencyReader, MetricsReader, SpanWriter, TraceReader


def open_store(config: StoreConfig, *, migrate: bool = True, writers: int = 2) -> ClickHouseStore:
    """The store for `config`: takes the data-directory lock (embedded), creates the
    database if needed and applies pending migrations; `writers` inserts may run at once.
    With `migrate=False` it creates nothing (the schema is someone else's: `tracehouse schema
    apply`). Close it with `.close()`."""
    return ClickHouseStore(config, migrate=migrate, writers=writers)


__all__ = [
    "COLUMNS",
    "MAX_TRACE_SPANS",
    "AttributeFilter",
    "Attributes",
    "CallStats",
    "ClickHouseStore",
    "ConfigError",
    "Dependencies",
    "DependencyLink",
    "DependencyReader",
    "Event",
    "InvalidQuery",
    "Link",
    "MetricsReader",
    "Operation",
    "OperationStats",
    "OtlpPayload",
    "RedPoint",
    "RedQuery",
    "Span",
    "SpanBatch",
    "SpanWriter",
    "StorageError",
    "StoreBusy",
    "StoreConfig",
    "StoreLocked",
    "StoreRejected",
    "StoreUnavailable",
    "TraceQuery",
    "TraceReader",
    "TraceSummary",
    "open_store",
]
