"""Auto-breakers: every outbound HTTP destination of an auto-instrumented service gets a breaker,
so it shows on the breaker wall without code changes.

``metrics`` mode (the default) feeds metrics-only breakers from client spans (``on_end`` of CLIENT
spans with HTTP attributes): ``failure`` for an error status, an HTTP status >= 500 or a recorded
exception, else ``success``; latency is the span's duration. ``enforce`` mode also guards httpx and
requests (:mod:`.auto_guard`): an open destination's calls are refused before they leave. Never
raises into the service.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from urllib.parse import urlsplit

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanKind, StatusCode

from tracehouse.instrumentation.breakers.breaker import BreakerCore
from tracehouse.instrumentation.breakers.config import BreakerConfig
from tracehouse.instrumentation.breakers.registry import REGISTRY, Registry
from tracehouse.instrumentation.breakers.window import Outcome

__all__ = ["MAX_DESTINATIONS", "AutoBreakerProcessor", "AutoBreakers", "destination"]

#: Destinations beyond this many share one breaker, ``http:other``.
MAX_DESTINATIONS = 200
_METHOD_KEYS = ("http.request.method", "http.method")
_STATUS_KEYS = ("http.response.status_code", "http.status_code")


def destination(attributes: Mapping[str, object]) -> str | None:
    """``host:port`` an HTTP client span went to, or ``None`` when it is not an HTTP client span."""
    if not any(key in attributes for key in _METHOD_KEYS):
        return None
    host = attributes.get("server.address") or attributes.get("net.peer.name")
    port = attributes.get("server.port") or attributes.get("net.peer.port")
    if not host:
        url = attributes.get("url.full") or attributes.get("http.url")
        if not isinstance(url, str):
            return None
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return f"{host}:{port}" if port else str(host)


class AutoBreakers:
    """The breaker of each destination (``http:host:port``), created on first use.

    ``enforce`` breakers judge health and open; the others are metrics-only.
    """

    def __init__(self, registry: Registry = REGISTRY, enforce: bool = False) -> None:
        self.enforce = enforce
        self._registry = registry
        self._lock = threading.Lock()
        self._breakers: dict[str, BreakerCore] = {}
        self._config = BreakerConfig(group="http")

    def get(self, where: str) -> BreakerCore:
        found = self._breakers.get(where)
        if found is not None:
            return found
        with self._lock:
            if len(self._breakers) >= MAX_DESTINATIONS:
                where = "other"
            found = self._breakers.get(where)
            if found is None:
                found = BreakerCore(f"http:{where}", self._config)
                if not self.enforce:
                    found.metrics_only()
                self._breakers[where] = found
                self._registry.add(found)
            return found


class AutoBreakerProcessor(SpanProcessor):
    """Feeds :class:`AutoBreakers` from client spans, except those of ``skip_scopes`` (the HTTP
    clients a guard already counts call by call)."""

    def __init__(self, breakers: AutoBreakers | None = None, skip_scopes: frozenset[str] = frozenset()) -> None:
        self.breakers = breakers or AutoBreakers()
        self._skip_scopes = skip_scopes

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        with contextlib.suppress(Exception):  # a broken processor must never break the service
            self._observe(span)

    def _observe(self, span: ReadableSpan) -> None:
        if span.kind is not SpanKind.CLIENT or span.start_time is None or span.end_time is None:
            return
        scope = span.instrumentation_scope
        if scope is not None and scope.name in self._skip_scopes:
            return
        attributes = dict(span.attributes or {})
        where = destination(attributes)
        if where is None:
            return
        status = next((attributes[k] for k in _STATUS_KEYS if k in attributes), 0)
        failed = (
            span.status.status_code is StatusCode.ERROR
            or (isinstance(status, int) and status >= 500)
            or any(event.name == "exception" for event in span.events)
        )
        latency_ms = (span.end_time - span.start_time) / 1e6
        self.breakers.get(where).observe(Outcome.FAILURE if failed else Outcome.SUCCESS, latency_ms)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True
