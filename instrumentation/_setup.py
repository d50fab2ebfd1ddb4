"""Builds the OpenTelemetry SDK pieces from an :class:`InstrumentationConfig` and installs them.

One small builder per piece (resource, sampler, exporter, provider, propagator), so later work
can swap one without touching the rest. :func:`install` must never raise: a tracing set-up that
fails is logged and the service runs untraced; log correlation that fails is logged and tracing goes on.
"""

from __future__ import annotations

import logging
import multiprocessing.util
import os
import socket
import threading
import weakref
from collections.abc import Callable, Mapping

from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import (
    DEPLOYMENT_ENVIRONMENT,
    HOST_NAME,
    PROCESS_PID,
    SERVICE_INSTANCE_ID,
    SERVICE_NAME,
    SERVICE_VERSION,
    Resource,
)
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Sampler, TraceIdRatioBased

from tracehouse.instrumentation import config as names
from tracehouse.instrumentation._drops import EXIT_GRACE_S, ReportingExporter, count_queue_drops, quiet_outages
from tracehouse.instrumentation._exit import FLUSH_SECONDS, flush_on_sigterm
from tracehouse.instrumentation._handle import TracingHandle
from tracehouse.instrumentation.config import InstrumentationConfig
from tracehouse.instrumentation.log_correlation import correlate_logs
from tracehouse.instrumentation.propagation import build_propagator
from tracehouse.instrumentation.sampling import CallerBased, RateLimitingSampler

__all__ = [
    "ROOT_SAMPLERS",
    "build",
    "build_exporter",
    "build_provider",
    "build_resource",
    "build_sampler",
    "install",
]

_log = logging.getLogger("tracehouse.instrumentation")

# Semantic conventions renamed deployment.environment; both are set so old and new queries match.
DEPLOYMENT_ENVIRONMENT_NAME = "deployment.environment.name"

_lock = threading.Lock()
_installed: TracingHandle | None = None


def build_resource(config: InstrumentationConfig) -> Resource:
    """The resource of every span: service identity, host and process.

    ``Resource.create`` also merges ``OTEL_RESOURCE_ATTRIBUTES``; the values set here win.
    """
    return Resource.create({**_service_attributes(config), **_process_attributes(config)})


def _service_attributes(config: InstrumentationConfig) -> dict[str, str]:
    attributes = {SERVICE_NAME: config.service_name}
    if config.service_version:
        attributes[SERVICE_VERSION] = config.service_version
    if config.environment:
        attributes[DEPLOYMENT_ENVIRONMENT] = config.environment
        attributes[DEPLOYMENT_ENVIRONMENT_NAME] = config.environment
    return attributes


def _process_attributes(config: InstrumentationConfig) -> dict[str, str | int]:
    host, pid = socket.gethostname(), os.getpid()
    return {
        HOST_NAME: host,
        PROCESS_PID: pid,
        SERVICE_INSTANCE_ID: config.service_instance_id or f"{host}:{pid}",
    }


#: The root sampler of each ``config.sampler`` name: it decides for new traces only.
ROOT_SAMPLERS: Mapping[str, Callable[[InstrumentationConfig], Sampler]] = {
    names.RATELIMIT: lambda config: RateLimitingSampler(config.sampler_rate),
    names.RATIO: lambda config: TraceIdRatioBased(config.sampler_ratio),
    names.ALWAYS_ON: lambda _config: ALWAYS_ON,
    names.ALWAYS_OFF: lambda _config: ALWAYS_OFF,
}


def build_sampler(config: InstrumentationConfig) -> Sampler:
    """Follow the caller's decision when there is one (B3's "deny" without ids too), else ask the root
    sampler ``config.sampler`` (also when a B3 caller deferred to us);
    without ``config.sampler_parent_based`` (OTel's ``always_on``, ``always_off``, ``traceidratio``)
    the root sampler decides every span."""
    root = ROOT_SAMPLERS[config.sampler](config)
    return CallerBased(root) if config.sampler_parent_based else root


def build_exporter(config: InstrumentationConfig) -> SpanExporter:
    """OTLP/HTTP protobuf to ``config.traces_url``; timeout and compression come from ``OTEL_*``."""
    return OTLPSpanExporter(endpoint=config.traces_url, headers=config.export_headers or None)


def build_provider(config: InstrumentationConfig, exporter: SpanExporter | None = None) -> TracerProvider:
    """A tracer provider exporting through a batch processor; it is not made global here.

    Spans the processor drops (queue full) or fails to export are counted, not logged one by one,
    and reported in one line once exporting works again."""
    provider = TracerProvider(resource=build_resource(config), sampler=build_sampler(config))
    reporting = ReportingExporter(
        exporter or build_exporter(config), config.traces_url, count_queue_drops(), quiet_outages()
    )
    provider.add_span_processor(_ClosingBatchProcessor(reporting))
    if config.auto_breakers != "off":
        provider.add_span_processor(_auto_breakers(config.auto_breakers == "enforce"))
    if not config.service_instance_id:
        _renew_instance_after_fork(provider, config)
    _flush_at_multiprocessing_exit(provider)
    return provider


class _ClosingBatchProcessor(BatchSpanProcessor):
    """A batch processor whose shutdown (at exit, on SIGTERM, ``TracingHandle.shutdown``) goes on while
    exports succeed and gives an absent collector
    :data:`~tracehouse.instrumentation._drops.EXIT_GRACE_S`, not the exporter's 10 s per batch."""

    def __init__(self, exporter: ReportingExporter) -> None:
        super().__init__(exporter)
        self._reporting = exporter
        self._shut = False

    def shutdown(self) -> None:
        if self._shut:
            return
        self._shut = True
        self._reporting.closing()
        # The SDK's shutdown waits out an export in flight: a collector that accepts and never
        # answers held a stopping process for the exporter's whole timeout (10 s). Waited for while
        # exports make progress; once given up, the export in flight gets one more grace, then what
        # was not sent is told and the worker (a daemon thread) left behind.
        closer = threading.Thread(target=super().shutdown, name="tracehouse-close", daemon=True)
        closer.start()
        while closer.is_alive() and not self._reporting.given_up:
            closer.join(0.05)
        closer.join(EXIT_GRACE_S)
        if closer.is_alive():
            self._reporting.shutdown()


def _auto_breakers(enforce: bool) -> SpanProcessor:
    """The span processor feeding per-destination breakers; with ``enforce``, httpx and requests are
    guarded too (their spans are then counted by the guard, not by the processor)."""
    from tracehouse.instrumentation.breakers.auto import AutoBreakerProcessor, AutoBreakers
    from tracehouse.instrumentation.breakers.auto_guard import GUARDED_SCOPES, guard_http_clients

    breakers = AutoBreakers(enforce=enforce)
    if not enforce:
        return AutoBreakerProcessor(breakers)
    guarded = guard_http_clients(breakers)
    _log.info("tracehouse: auto-breakers enforce on %s", ", ".join(guarded) or "no installed HTTP client")
    return AutoBreakerProcessor(breakers, GUARDED_SCOPES)


def _renew_instance_after_fork(provider: TracerProvider, config: InstrumentationConfig) -> None:
    """Give each forked worker (gunicorn, uWSGI) its own pid and instance id, not its parent's."""
    ref = weakref.ref(provider)

    def after_in_child() -> None:
        child = ref()
        if child is not None:
            # The SDK refreshes the resource after fork itself through this same private method.
            child._update_resource(Resource(_process_attributes(config)))

    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=after_in_child)


def _flush_at_multiprocessing_exit(provider: TracerProvider) -> None:
    """Make each child forked by ``multiprocessing`` (``Process``, ``Pool`` workers) flush its spans
    when it ends: it leaves through ``os._exit``, which runs no ``atexit`` hook, only multiprocessing's
    own finalizers. Those are cleared in the child before ``register_after_fork`` callbacks run, so
    the finalizer is registered from one, in each child (a weak reference: it does not keep
    ``provider`` alive)."""
    multiprocessing.util.register_after_fork(provider, _finalize_in_child)


def _finalize_in_child(provider: TracerProvider) -> None:
    # Priority 0: run by the child's first pass over finalizers, before it joins its own children.
    multiprocessing.util.Finalize(provider, _flush, args=(weakref.ref(provider),), exitpriority=0)


def _flush(ref: weakref.ref[TracerProvider]) -> None:
    provider = ref()
    if provider is not None:
        try:
            provider.force_flush(int(FLUSH_SECONDS * 1000))
        except Exception:
            _log.exception("tracehouse: flushing spans at process exit failed")


def build(config: InstrumentationConfig, exporter: SpanExporter | None = None) -> TracingHandle:
    """Provider and propagator for ``config``, not installed globally. May raise."""
    propagator = build_propagator(config.propagators)  # first: it can fail without leaking a thread
    return TracingHandle(config=config, provider=build_provider(config, exporter), propagator=propagator)


def install(config: InstrumentationConfig, exporter: SpanExporter | None = None) -> TracingHandle:
    """Build and install as the process-wide provider and propagator. Never raises.

    The global tracer provider can be set once per process: a second call returns the first
    handle, and a provider installed by someone else is left in place (ours is shut down).
    """
    global _installed
    with _lock:
        if _installed is not None:
            _log.warning("tracehouse: tracing is already configured in this process; keeping it")
            return _installed
        try:
            handle = _make_global(build(config, exporter))
        except Exception:
            _log.exception("tracehouse: tracing set-up failed; the service runs untraced")
            return TracingHandle(config=config)
        if handle.installed:
            _installed = handle
            flush_on_sigterm(handle)
            if config.log_correlation:
                _correlate_logs(config)
            _start_breaker_reporting(config)
        return handle


def _start_breaker_reporting(config: InstrumentationConfig) -> None:
    """Push breaker stats beside the spans (each forked worker too), and serve /hystrix.stream when
    asked. Never raises."""
    from tracehouse.instrumentation.breakers.reporter import start_reporter
    from tracehouse.instrumentation.breakers.stream import serve_hystrix_stream

    try:
        if config.report_breakers:
            # A forked worker reports with its own id, the one its spans get (``_renew_instance_after_fork``).
            def instance() -> str:
                return str(_process_attributes(config)[SERVICE_INSTANCE_ID])

            start_reporter(
                config.breakers_url, config.service_name, instance(), config.cluster, config.export_headers, instance
            )
        # The stream's port is the parent's: a forked worker serves no stream of its own (docs/hystrix.md).
        if config.hystrix_stream_port is not None:
            server = serve_hystrix_stream(config.hystrix_stream_port)
            _log.info("tracehouse: /hystrix.stream on http://127.0.0.1:%d", server.server_address[1])
    except Exception:
        _log.exception("tracehouse: breaker reporting set-up failed; breakers still protect calls")


def _correlate_logs(config: InstrumentationConfig) -> None:
    try:
        correlate_logs(config.service_name)
    except Exception:
        _log.exception("tracehouse: log correlation set-up failed; log lines go out without trace ids")


def _make_global(handle: TracingHandle) -> TracingHandle:
    provider, propagator = handle.provider, handle.propagator
    if provider is None or propagator is None:
        return handle
    trace.set_tracer_provider(provider)
    if trace.get_tracer_provider() is not provider:
        _log.warning("tracehouse: another tracer provider is already installed; not replacing it")
        handle.shutdown()
        return TracingHandle(config=handle.config)
    propagate.set_global_textmap(propagator)
    return TracingHandle(handle.config, provider, propagator, installed=True)
