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
``sampler``                    TRACEHOUSE_SAMPLER (``ratelimit``, ``ratio``, ``always_on``, ``always_off``);
                               else ``ratelimit`` if TRACEHOUSE_SAMPLER_RATE is set, ``ratio`` if
                               TRACEHOUSE_SAMPLER_RATIO is; else OTEL_TRACES_SAMPLER (``always_on``,
                               ``always_off``, ``traceidratio``, the ``parentbased_`` form of each, and
                               ``parentbased_ratelimit``; other names mean the default, as in the SDK);
                               default ``always_on`` (OpenTelemetry's ``parentbased_always_on``).
``sampler_parent_based``       OTEL_TRACES_SAMPLER: false for ``always_on``, ``always_off`` and
                               ``traceidratio``, which ignore the caller's decision as OpenTelemetry
                               specifies; true otherwise. A sampler chosen through TRACEHOUSE_SAMPLER*
                               always follows the caller: ``always_off`` then only stops new traces.
``sampler_ratio``              TRACEHOUSE_SAMPLER_RATIO, OTEL_TRACES_SAMPLER_ARG (for a ratio sampler)
``sampler_rate``               TRACEHOUSE_SAMPLER_RATE, OTEL_TRACES_SAMPLER_ARG (for
                               ``parentbased_ratelimit``): new traces per second (default 10)
``headers``                    TRACEHOUSE_HEADERS, OTEL_EXPORTER_OTLP_TRACES_HEADERS,
                               OTEL_EXPORTER_OTLP_HEADERS (``k=v,k2=v2``, values URL-encoded;
                               the OTLP exporter also adds the OTEL_* ones, ours win per name)
``token``                      TRACEHOUSE_TOKEN (sent as ``Authorization: Bearer <token>``)
``log_correlation``            TRACEHOUSE_LOG_CORRELATION, OTEL_PYTHON_LOG_CORRELATION (``true`` or
                               ``false``, default true): ids on every ``logging`` record
``cluster``                    TRACEHOUSE_CLUSTER: the breaker cluster this instance reports in
                               (default: the service name)
``report_breakers``            TRACEHOUSE_REPORT_BREAKERS (``true``/``false``, default true): push breaker
                               stats each second to ``{endpoint}/v1/breakers``
``auto_breakers``              TRACEHOUSE_AUTO_BREAKERS: a breaker per outbound HTTP destination;
                               ``metrics`` (default: metrics-only, fed by the client spans), ``enforce``
                               (httpx and requests calls to an open destination are refused), ``off``
``hystrix_stream_port``        TRACEHOUSE_HYSTRIX_STREAM_PORT: serve this process's ``/hystrix.stream``
                               on 127.0.0.1:PORT (default: not served)
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
    "DEFAULT_SAMPLER_RATE",
    "ENV_VARS",
    "SAMPLERS",
    "ConfigError",
    "InstrumentationConfig",
    "implied_sampler",
    "parse_propagators",
]

DEFAULT_ENDPOINT = "http://127.0.0.1:4318"
DEFAULT_PROPAGATORS: tuple[str, ...] = ("tracecontext", "baggage", "b3multi")
DEFAULT_SERVICE_NAME = "unknown_service"
TRACES_PATH = "/v1/traces"

# Root samplers, each under ParentBased; built by name in _setup.build_sampler.
ALWAYS_ON, ALWAYS_OFF, RATIO, RATELIMIT = "always_on", "always_off", "ratio", "ratelimit"
SAMPLERS: tuple[str, ...] = (RATELIMIT, RATIO, ALWAYS_ON, ALWAYS_OFF)
#: New traces per second of the rate-limiting sampler, as Spring Cloud Sleuth's default.
DEFAULT_SAMPLER_RATE = 10.0

#: The Tracehouse variable of each setting; error messages name it next to the field.
ENV_VARS: Mapping[str, str] = {
    "service_name": "TRACEHOUSE_SERVICE_NAME",
    "service_version": "TRACEHOUSE_SERVICE_VERSION",
    "environment": "TRACEHOUSE_ENVIRONMENT",
    "service_instance_id": "TRACEHOUSE_SERVICE_INSTANCE_ID",
    "endpoint": "TRACEHOUSE_ENDPOINT",
    "traces_endpoint": "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "propagators": "TRACEHOUSE_PROPAGATORS",
    "sampler": "TRACEHOUSE_SAMPLER",
    "sampler_ratio": "TRACEHOUSE_SAMPLER_RATIO",
    "sampler_rate": "TRACEHOUSE_SAMPLER_RATE",
    "sampler_parent_based": "OTEL_TRACES_SAMPLER",
    "headers": "TRACEHOUSE_HEADERS",
    "token": "TRACEHOUSE_TOKEN",
    "log_correlation": "TRACEHOUSE_LOG_CORRELATION",
    "cluster": "TRACEHOUSE_CLUSTER",
    "report_breakers": "TRACEHOUSE_REPORT_BREAKERS",
    "hystrix_stream_port": "TRACEHOUSE_HYSTRIX_STREAM_PORT",
    "auto_breakers": "TRACEHOUSE_AUTO_BREAKERS",
}

# OTEL_TRACES_SAMPLER names and the root sampler each means here (under ParentBased unless in _ROOT_ONLY).
# Others (jaeger_remote, xray, ...) are not supported and fall back to the default, as the SDK does.
_OTEL_SAMPLERS: Mapping[str, str] = {
    "always_on": ALWAYS_ON,
    "parentbased_always_on": ALWAYS_ON,
    "always_off": ALWAYS_OFF,
    "parentbased_always_off": ALWAYS_OFF,
    "traceidratio": RATIO,
    "parentbased_traceidratio": RATIO,
    "parentbased_ratelimit": RATELIMIT,
}
# The OTEL_TRACES_SAMPLER names that decide every span alone, the caller's decision notwithstanding.
_ROOT_ONLY = frozenset({"always_on", "always_off", "traceidratio"})
_TRUE, _FALSE = frozenset({"true", "1", "yes", "on"}), frozenset({"false", "0", "no", "off"})


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
    sampler: str = ALWAYS_ON
    sampler_ratio: float = 1.0
    sampler_rate: float = DEFAULT_SAMPLER_RATE
    sampler_parent_based: bool = True
    headers: tuple[tuple[str, str], ...] = ()
    token: str | None = None
    log_correlation: bool = True
    cluster: str | None = None
    report_breakers: bool = True
    hystrix_stream_port: int | None = None
    auto_breakers: str = "metrics"

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
            sampler=_sampler_from_env(environ),
            sampler_parent_based=_sampler_parent_based_from_env(environ),
            sampler_ratio=_sampler_ratio_from_env(environ),
            sampler_rate=_sampler_rate_from_env(environ),
            headers=_headers_from_env(environ),
            token=_first(environ, "TRACEHOUSE_TOKEN"),
            log_correlation=_log_correlation_from_env(environ),
            cluster=_first(environ, "TRACEHOUSE_CLUSTER"),
            report_breakers=_flag(environ, "report_breakers", True),
            hystrix_stream_port=_port(environ, "hystrix_stream_port"),
            auto_breakers=_auto_breakers(environ),
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
    def breakers_url(self) -> str:
        """The URL breaker stats are POSTed to: beside the traces, on the OTLP/HTTP port (a
        traces URL ending in /v1/traces gives the collector's base)."""
        if self.traces_endpoint and self.traces_endpoint.rstrip("/").endswith(TRACES_PATH):
            return self.traces_endpoint.rstrip("/").removesuffix(TRACES_PATH) + "/v1/breakers"
        return self.endpoint.rstrip("/") + "/v1/breakers"

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
        for key in ("service_version", "environment", "service_instance_id", "cluster"):
            value = getattr(self, key)
            if value is not None:
                _check_text(key, value)
        _check_url("endpoint", self.endpoint)
        if self.traces_endpoint is not None:
            _check_url("traces_endpoint", self.traces_endpoint)
        _check_propagators(self.propagators)
        _check_sampler(self.sampler)
        _check_ratio(self.sampler_ratio)
        _check_rate(self.sampler_rate)
        _check_headers(self.headers, self.token)
        return self


# --- reading the environment -------------------------------------------------------------


def _flag(environ: Mapping[str, str], key: str, default: bool) -> bool:
    text = _first(environ, ENV_VARS[key])
    if text is None:
        return default
    if text.lower() in _TRUE | _FALSE:
        return text.lower() in _TRUE
    raise ConfigError(key, f"{text[:40]!r} is not true or false")


AUTO_BREAKER_MODES = ("metrics", "enforce", "off")


def _auto_breakers(environ: Mapping[str, str]) -> str:
    text = (_first(environ, ENV_VARS["auto_breakers"]) or "metrics").lower()
    text = {"true": "metrics", "1": "metrics", "on": "metrics", "false": "off", "0": "off", "no": "off"}.get(text, text)
    if text not in AUTO_BREAKER_MODES:
        raise ConfigError("auto_breakers", f"{text[:40]!r} is not one of {', '.join(AUTO_BREAKER_MODES)}")
    return text


def _port(environ: Mapping[str, str], key: str) -> int | None:
    text = _first(environ, ENV_VARS[key])
    if text is None:
        return None
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise ConfigError(key, f"{text[:40]!r} is not a port number (0-65535)")
    return int(text)


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


def implied_sampler(ratio: float | str | None = None, rate: float | str | None = None) -> str | None:
    """The sampler meant when only its parameter is given: a rate means ``ratelimit``, a ratio ``ratio``."""
    if ratio is not None and rate is not None:
        raise ConfigError("sampler", "both a ratio and a rate are given; name the sampler to use")
    if rate is not None:
        return RATELIMIT
    return None if ratio is None else RATIO


def _sampler_from_env(environ: Mapping[str, str]) -> str:
    name = _first(environ, "TRACEHOUSE_SAMPLER")
    if name is not None:
        return name.lower()
    implied = implied_sampler(_first(environ, "TRACEHOUSE_SAMPLER_RATIO"), _first(environ, "TRACEHOUSE_SAMPLER_RATE"))
    return implied or _OTEL_SAMPLERS.get(_otel_sampler(environ), ALWAYS_ON)


def _sampler_parent_based_from_env(environ: Mapping[str, str]) -> bool:
    """False only when the sampler comes from an ``OTEL_TRACES_SAMPLER`` name that is not parent-based."""
    ours = ("TRACEHOUSE_SAMPLER", "TRACEHOUSE_SAMPLER_RATIO", "TRACEHOUSE_SAMPLER_RATE")
    return _first(environ, *ours) is not None or _otel_sampler(environ) not in _ROOT_ONLY


def _otel_sampler(environ: Mapping[str, str]) -> str:
    return (_first(environ, "OTEL_TRACES_SAMPLER") or "").lower()


def _sampler_ratio_from_env(environ: Mapping[str, str]) -> float:
    raw = _first(environ, "TRACEHOUSE_SAMPLER_RATIO")
    if raw is not None:
        return _parse_number(raw, "sampler_ratio", "TRACEHOUSE_SAMPLER_RATIO")
    arg = _first(environ, "OTEL_TRACES_SAMPLER_ARG")
    if arg is None or _OTEL_SAMPLERS.get(_otel_sampler(environ)) != RATIO:
        return 1.0
    return _parse_number(arg, "sampler_ratio", "OTEL_TRACES_SAMPLER_ARG")


def _sampler_rate_from_env(environ: Mapping[str, str]) -> float:
    raw = _first(environ, "TRACEHOUSE_SAMPLER_RATE")
    if raw is not None:
        return _parse_number(raw, "sampler_rate", "TRACEHOUSE_SAMPLER_RATE")
    arg = _first(environ, "OTEL_TRACES_SAMPLER_ARG")
    if arg is None or _OTEL_SAMPLERS.get(_otel_sampler(environ)) != RATELIMIT:
        return DEFAULT_SAMPLER_RATE
    return _parse_number(arg, "sampler_rate", "OTEL_TRACES_SAMPLER_ARG")


def _parse_number(raw: str, key: str, source: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(key, f"expected a number, got {raw!r}", source) from None


def _log_correlation_from_env(environ: Mapping[str, str]) -> bool:
    for name in ("TRACEHOUSE_LOG_CORRELATION", "OTEL_PYTHON_LOG_CORRELATION"):
        raw = _first(environ, name)
        if raw is not None:
            return _parse_bool(raw, "log_correlation", name)
    return True


def _parse_bool(raw: str, key: str, source: str) -> bool:
    value = raw.lower()
    if value in _TRUE or value in _FALSE:
        return value in _TRUE
    raise ConfigError(key, f"expected true or false, got {raw!r}", source)


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


def _check_sampler(name: str) -> None:
    if name not in SAMPLERS:
        raise ConfigError("sampler", f"unknown sampler {name!r}; expected one of {', '.join(SAMPLERS)}")


def _check_rate(rate: float) -> None:
    if not (math.isfinite(rate) and rate >= 0.0):
        raise ConfigError("sampler_rate", f"must be a number of traces per second >= 0, got {rate!r}")


def _check_ratio(ratio: float) -> None:
    if not (math.isfinite(ratio) and 0.0 <= ratio <= 1.0):
        raise ConfigError("sampler_ratio", f"must be within [0, 1], got {ratio!r}")


def _check_headers(headers: tuple[tuple[str, str], ...], token: str | None) -> None:
    for name, value in headers:
        if not name or any(ch in name + value for ch in "\r\n\x00") or any(ch.isspace() for ch in name):
            raise ConfigError("headers", f"bad header {name!r}")
    if token is not None and (not token or any(ch.isspace() for ch in token)):
        raise ConfigError("token", "must be a non-empty string without whitespace")
