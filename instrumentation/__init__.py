"""Tracing for Python services: ``configure()``, or the ``tracehouse-run`` launcher, sets up OpenTelemetry
to export spans to Tracehouse. Importing this package is cheap and does nothing: the SDK loads on the first call.
It must never import a server-side dependency (ClickHouse, chDB, FastAPI, Dash, gRPC).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from tracehouse.instrumentation._handle import TracingHandle
from tracehouse.instrumentation.config import ConfigError, InstrumentationConfig, implied_sampler, parse_propagators

__all__ = ["ConfigError", "InstrumentationConfig", "TracingHandle", "configure"]


def configure(
    service_name: str | None = None,
    endpoint: str | None = None,
    *,
    service_version: str | None = None,
    environment: str | None = None,
    service_instance_id: str | None = None,
    propagators: Iterable[str] | None = None,
    sampler: str | None = None,
    sampler_ratio: float | None = None,
    sampler_rate: float | None = None,
    headers: Mapping[str, str] | None = None,
    token: str | None = None,
    log_correlation: bool | None = None,
    environ: Mapping[str, str] | None = None,
) -> TracingHandle:
    """Set up tracing for this process and return its handle.

    Arguments left ``None`` come from the environment (``environ``, default ``os.environ``;
    see :mod:`tracehouse.instrumentation.config`). ``sampler`` is ``ratelimit`` (at most
    ``sampler_rate`` new traces a second), ``ratio``, ``always_on`` (the default) or ``always_off``,
    each for new traces only (a caller's decision is followed); given only ``sampler_rate`` or only
    ``sampler_ratio``, it is the sampler that takes it. Raises
    :class:`ConfigError` for an invalid setting; any other failure is logged and the returned
    handle is inactive. Tracing is set up once per process: later calls return the first handle.
    """
    sampler = sampler or implied_sampler(sampler_ratio, sampler_rate)
    changes: dict[str, Any] = {
        "service_name": service_name,
        "endpoint": endpoint,
        "service_version": service_version,
        "environment": environment,
        "service_instance_id": service_instance_id,
        "propagators": _propagator_names(propagators),
        "sampler": sampler,
        # Tracehouse's samplers always follow the caller, whatever OTEL_TRACES_SAMPLER said.
        "sampler_parent_based": True if sampler else None,
        "sampler_ratio": sampler_ratio,
        "sampler_rate": sampler_rate,
        "headers": None if headers is None else tuple(headers.items()),
        "token": token,
        "log_correlation": log_correlation,
    }
    base = InstrumentationConfig.from_env(os.environ if environ is None else environ)
    config = base.replace(**{key: value for key, value in changes.items() if value is not None})
    # Imported here so that importing the package does not load the OpenTelemetry SDK.
    from tracehouse.instrumentation._setup import install

    return install(config.validate())


def _propagator_names(propagators: Iterable[str] | None) -> tuple[str, ...] | None:
    """Accept ``"tracecontext,b3"`` as well as ``["tracecontext", "b3"]``."""
    if propagators is None:
        return None
    if isinstance(propagators, str):
        return parse_propagators(propagators)
    return tuple(propagators)
