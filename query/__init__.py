"""The query API: native `/api/v1` (and, later, Zipkin- and Jaeger-compatible APIs).

Reads through `tracehouse.storage.TraceReader` only; never imports the collector.
"""

from tracehouse.query.app import build_query_app
from tracehouse.query.config import QueryConfig
from tracehouse.query.errors import ApiError, BadRequest, NotFound
from tracehouse.query.ids import normalize_trace_id

__all__ = ["ApiError", "BadRequest", "NotFound", "QueryConfig", "build_query_app", "normalize_trace_id"]
