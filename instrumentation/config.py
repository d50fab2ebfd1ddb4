"""The one typed configuration object of a service's tracing set-up, and where it comes from.

Precedence, per setting: explicit argument > ``TRACEHOUSE_*`` > standard ``OTEL_*`` > default.
This module reads an environment mapping and nothing else: it must never import the SDK or
touch the network, so building and validating a config is cheap and side-effect free.

=============================  ==================================================================
setting                        environment variables, highest precedence first
=============================  ==================================================================
``service_name``               TRACEHOUSE_SERVICE_NAME, OTEL_SERVICE_NAME,
                               ``service.name`` in OTEL_RESOURCE_ATTRIBUTES
``service_version``            TRACEHOUSE_SERVICE_VERSION, ``service.version`` in OTEL_RESOURCE_ATTRIBUTES
``environment``                TRACEHOUSE_ENVIRONMENT, ``deployment.environment.name`` or
                               ``deployment.environment`` in OTEL_RESOURCE_ATTRIBUTES
``service_instance_id``        TRACEHOUSE_SERVICE_INSTANCE_ID, ``service.instance.id`` in
                               OTEL_RESOURCE_ATTRIBUTES (default: ``{hostname}:{pid}``)
``endpoint``                   TRACEHOUSE_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT (base URL)
``traces_endpoint``            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (full URL, used as is; ignored
                               when TRACEHOUSE_ENDPOINT is set)
``propagators``                TRACEHOUSE_PROPAGATORS, OTEL_PROPAGATORS (comma separated)
``sampler_ratio``              TRACEHOUSE_SAMPLER_RATIO, OTEL_TRACES_SAMPLER + OTEL_TRACES_SAMPLER_ARG
``headers``                    TRACEHOUSE_HEADERS, OTEL_EXPORTER_OTLP_TRACES_HEADERS,
                               OTEL_EXPORTER_OTLP_HEADERS (``k=v,k2=v2``, values URL-encoded;
                               the OTLP exporter also adds the OTEL_* ones, ours win per name)
``token``                      TRACEHOUSE_TOKEN (sent as ``Authorization: Bearer <token>``)
=============================  ==================================================================
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_PROPAGATORS",
    "ENV_VARS",
    "ConfigError",
    "InstrumentationConfig",
]

DEFAULT_ENDPOINT = "http://127.0.0.1:4318"
DEFAULT_PROPAGATORS: tuple[str, ...] = ("tracecontext", "baggage", "b3multi")
DEFAULT_SERVICE_NAME = "unknown_service"
TRACES_PATH = "/v1/traces"

#: The Tracehouse variable of each setting; error messages name it next to the field.
ENV_VARS: Mapping[str, str] = {
    "service_name": "TRACEHOUSE_SERVICE_NAME",
    "service_version": "TRACEHOUSE_SERVICE_VERSION",
    "environment": "TRACEHOUSE_ENVIRONMENT",
    "service_instance_id": "TRACEHOUSE_SERVICE_INSTANCE_ID",
    "endpoint": "TRACEHOUSE_ENDPOINT",
    "traces_endpoint": "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "propagators": "TRACEHOUSE_PROPAGATORS",
    "sampler_ratio": "TRACEHOUSE_SAMPLER_RATIO",
    "headers": "TRACEHOUSE_HEADERS",
    "token": "TRACEHOUSE_TOKEN",
}

# OTEL_TRACES_SAMPLER values that translate to a ratio under our ParentBased sampler.
# Other samplers (jaeger_remote, xray, ...) are left to the sampler work and fall back to the ratio.
_FIXED_RATIO_SAMPLERS: Mapping[str, float] = {
    "always_on": 1.0,
    "parentbased_always_on": 1.0,
    "always_off": 0.0,
    "parentbased_always_off": 0.0,
}
_RATIO_SAMPLERS = frozenset({"traceidratio", "parentbased_traceidratio"})


class ConfigError(ValueError):
    """A setting has a bad value; ``key`` is the field name, and the message also names the variable."""

    def __init__(self, key: str, problem: str, source: str | None = None) -> None:
        self.key = key
        source = source or ENV_VARS.get(key)
        where = f"{key} ({source})" if source else key
        super().__init__(f"invalid {where}: {problem}")


@dataclass(frozen=True, slots=True)
class InstrumentationConfig:
    """How a service exports its spans. Build with :meth:`from_env`, check with :meth:`validate`."""

    service_name: str = DEFAULT_SERVICE_NAME
    service_version: str | None = None
    environment: str | None = None
    service_instance_id: str | None = None
    endpoint: str = DEFAULT_ENDPOINT
    traces_endpoint: str | None = None
    propagators: tuple[str, ...] = DEFAULT_PROPAGATORS
    sampler_ratio: float = 1.0
    headers: tuple[tuple[str, str], ...] = ()
    token: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> InstrumentationConfig:
        """Read the settings from ``environ``; raises :class:`ConfigError` on unparsable values."""
        resource = _parse_pairs(environ.get("OTEL_RESOURCE_ATTRIBUTES", ""))
        endpoint = _first(environ, "TRACEHOUSE_ENDPOINT")
        return cls(
            service_name=_first(environ, "TRACEHOUSE_SERVICE_NAME", "OTEL_SERVICE_NAME")
            or resource.get("service.name")
            or DEFAULT_SERVICE_NAME,
            service_version=_first(environ, "TRACEHOUSE_SERVICE_VERSION") or resource.get("service.version"),
            environment=_first(environ, "TRACEHOUSE_ENVIRONMENT")
            or resource.get("deployment.environment.name")
            or resource.get("deployment.environment"),
            service_instance_id=_first(environ, "TRACEHOUSE_SERVICE_INSTANCE_ID")
            or resource.get("service.instance.id"),
            endpoint=endpoint or _first(environ, "OTEL_EXPORTER_OTLP_ENDPOINT") or DEFAULT_ENDPOINT,
            # A base URL given to Tracehouse wins over a signal URL inherited from the environment.
            traces_endpoint=None if endpoint else _first(environ, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            propagators=_propagators_from_env(environ),
            sampler_ratio=_sampler_ratio_from_env(environ),
            headers=_headers_from_env(environ),
            token=_first(environ, "TRACEHOUSE_TOKEN"),
        )

    def replace(self, **changes: Any) -> InstrumentationConfig:
        """A copy with ``changes`` applied; a new ``endpoint`` drops an inherited ``traces_endpoint``."""
        if "endpoint" in changes and "traces_endpoint" not in changes:
            changes["traces_endpoint"] = None
        return dataclasses.replace(self, **changes)

    @property
    def traces_url(self) -> str:
        """The URL spans are POSTed to."""
        return self.traces_endpoint or self.endpoint.rstrip("/") + TRACES_PATH

    @property
    def export_headers(self) -> dict[str, str]:
        """Headers of every export request, the bearer token included."""
        headers = dict(self.headers)
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def validate(self) -> InstrumentationConfig:
        """Return ``self`` if every setting is usable, else raise :class:`ConfigError` naming it."""
        _check_text("service_name", self.service_name)
        for key in ("service_version", "environment", "service_instance_id"):
            value = getattr(self, key)
            if value is not None:
                _check_text(key, value)
        _check_url("endpoint", self.endpoint)
        if self.traces_endpoint is not None:
            _check_url("traces_endpoint", self.traces_endpoint)
        _check_propagators(self.propagators)
        _check_ratio(self.sampler_ratio)
        _check_headers(self.headers, self.token)
        return self


# --- reading the environment -------------------------------------------------------------


def _first(environ: Mapping[str, str], *names: str) -> str | None:
    """The first set, non-blank variable among ``names``, stripped (OTel treats empty as unset)."""
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


def _parse_pairs(text: str) -> dict[str, str]:
    """Parse the OTel ``k=v,k2=v2`` list format (values percent-encoded); malformed items are skipped."""
    pairs: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            pairs[unquote(key.strip())] = unquote(value.strip())
    return pairs


def _propagators_from_env(environ: Mapping[str, str]) -> tuple[str, ...]:
    raw = _first(environ, "TRACEHOUSE_PROPAGATORS", "OTEL_PROPAGATORS")
    if raw is None:
        return DEFAULT_PROPAGATORS
    return parse_propagators(raw)


def parse_propagators(raw: str) -> tuple[str, ...]:
    """``"tracecontext, b3"`` -> ``("tracecontext", "b3")``."""
    return tuple(name.strip() for name in raw.split(",") if name.strip())


def _sampler_ratio_from_env(environ: Mapping[str, str]) -> float:
    raw = _first(environ, "TRACEHOUSE_SAMPLER_RATIO")
    if raw is not None:
        return _parse_ratio(raw, "TRACEHOUSE_SAMPLER_RATIO")
    sampler = (_first(environ, "OTEL_TRACES_SAMPLER") or "").lower()
    if sampler in _FIXED_RATIO_SAMPLERS:
        return _FIXED_RATIO_SAMPLERS[sampler]
    arg = _first(environ, "OTEL_TRACES_SAMPLER_ARG")
    if arg is None or (sampler and sampler not in _RATIO_SAMPLERS):
        return 1.0
    return _parse_ratio(arg, "OTEL_TRACES_SAMPLER_ARG")


def _parse_ratio(raw: str, source: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ConfigError("sampler_ratio", f"expected a number, got {raw!r}", source) from None


def _headers_from_env(environ: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    raw = _first(
        environ,
        "TRACEHOUSE_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        "OTEL_EXPORTER_OTLP_HEADERS",
    )
    return tuple(_parse_pairs(raw).items()) if raw else ()


# --- validation ---------------------------------------------------------------------------


def _check_text(key: str, value: str) -> None:
    if not value.strip():
        raise ConfigError(key, "must not be empty")
    if any(ch in value for ch in "\r\n\x00"):
        raise ConfigError(key, f"must not contain control characters, got {value!r}")


def _check_url(key: str, value: str) -> None:
    try:
        parts = urlsplit(value)
        usable = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port that is not a number, or out of range
        usable = False
    if not usable:
        raise ConfigError(key, f"expected an http(s)://host[:port] URL, got {value!r}")


def _check_propagators(names: tuple[str, ...]) -> None:
    if not names:
        raise ConfigError("propagators", "must name at least one propagator (or 'none')")
    # Imported here so that config stays importable without touching entry points.
    from tracehouse.instrumentation.propagation import available_propagators

    known = available_propagators()
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError("propagators", f"unknown {unknown}; installed: {sorted(known)}")


def _check_ratio(ratio: float) -> None:
    if not (math.isfinite(ratio) and 0.0 <= ratio <= 1.0):
        raise ConfigError("sampler_ratio", f"must be within [0, 1], got {ratio!r}")


def _check_headers(headers: tuple[tuple[str, str], ...], token: str | None) -> None:
    for name, value in headers:
        if not name or any(ch in name + value for ch in "\r\n\x00") or any(ch.isspace() for ch in name):
            raise ConfigError("headers", f"bad header {name!r}")
    if token is not None and (not token or any(ch.isspace() for ch in token)):
        raise ConfigError("token", "must be a non-empty string without whitespace")
