"""The OpenTelemetry distro and configurator that zero-code instrumentation loads for Tracehouse.

``opentelemetry-instrument`` (and ``tracehouse-run``, through the same ``sitecustomize``) calls
``TracehouseDistro`` first, then ``TracehouseConfigurator``, then every installed contrib
instrumentor. Both run inside the user's service at start-up, so they must never raise:
a bad configuration is logged and the service starts untraced.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, MutableMapping
from typing import Any

# That module starts with a file-wide "type: ignore", so mypy sees it as empty.
from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.sdk._configuration import _BaseConfigurator

from tracehouse.instrumentation._setup import install
from tracehouse.instrumentation.config import InstrumentationConfig

__all__ = ["ENV_DEFAULTS", "TracehouseConfigurator", "TracehouseDistro"]

_log = logging.getLogger("tracehouse.instrumentation")

#: Set when absent. Our configurator ignores them; they keep any other configurator the user
#: selects (``OTEL_PYTHON_CONFIGURATOR``) sending traces the way Tracehouse receives them, and
#: stop it from exporting metrics and logs that Tracehouse does not ingest.
ENV_DEFAULTS: Mapping[str, str] = {
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    "OTEL_METRICS_EXPORTER": "none",
    "OTEL_LOGS_EXPORTER": "none",
}


def apply_env_defaults(environ: MutableMapping[str, str]) -> None:
    """Fill in :data:`ENV_DEFAULTS` without overriding anything the user set."""
    for name, value in ENV_DEFAULTS.items():
        environ.setdefault(name, value)


class _OthersNotChosen(logging.Filter):
    """Drops the loader's warning that another installed configurator (opentelemetry-distro's)
    was not loaded because ours is chosen: that is the choice, not a problem, and a service
    launched by tracehouse-run printed it at every start."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (str(record.msg).startswith("Configuration of %s not loaded")
                    and isinstance(record.args, tuple) and "tracehouse" in record.args[1:])  # fmt: skip


class TracehouseDistro(BaseDistro):  # type: ignore[misc]  # BaseDistro is Any to mypy
    """Entry point ``opentelemetry_distro: tracehouse``; selected by ``OTEL_PYTHON_DISTRO=tracehouse``."""

    def _configure(self, **kwargs: Any) -> None:
        apply_env_defaults(os.environ)
        # the distro loads first, then the configurators
        logging.getLogger("opentelemetry.instrumentation.auto_instrumentation._load").addFilter(_OthersNotChosen())


class TracehouseConfigurator(_BaseConfigurator):
    """Entry point ``opentelemetry_configurator: tracehouse``; selected by ``OTEL_PYTHON_CONFIGURATOR``.

    Builds the SDK from the environment (``TRACEHOUSE_*`` over ``OTEL_*``) and installs it.
    """

    def _configure(self, **kwargs: Any) -> None:
        try:
            config = InstrumentationConfig.from_env(os.environ).validate()
        except ValueError as exc:
            _log.error("tracehouse: tracing disabled, %s", exc)
            return
        install(config)
