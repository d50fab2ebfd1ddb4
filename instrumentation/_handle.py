"""The handle :func:`tracehouse.instrumentation.configure` returns: flush and shut down tracing.

Importing it must stay cheap (the SDK is named for type checking only), and its methods must
never raise into the service: failures are logged and reported as ``False``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tracehouse.instrumentation.config import InstrumentationConfig

if TYPE_CHECKING:
    from opentelemetry.propagators.textmap import TextMapPropagator
    from opentelemetry.sdk.trace import TracerProvider

__all__ = ["TracingHandle"]

_log = logging.getLogger("tracehouse.instrumentation")


@dataclass(frozen=True, slots=True)
class TracingHandle:
    """The tracing set-up of one process.

    ``provider`` is ``None`` when the set-up failed: the service then runs untraced.
    ``installed`` tells whether ``provider`` is the process-wide (global) tracer provider.
    """

    config: InstrumentationConfig
    provider: TracerProvider | None = None
    propagator: TextMapPropagator | None = None
    installed: bool = False

    @property
    def active(self) -> bool:
        """Whether spans are being recorded and exported."""
        return self.provider is not None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export every ended span now; ``False`` if that did not finish in time or failed."""
        if self.provider is None:
            return True
        try:
            return self.provider.force_flush(timeout_millis)
        except Exception:
            _log.exception("tracehouse: flushing spans failed")
            return False

    def shutdown(self) -> bool:
        """Flush and stop exporting; spans started afterwards are dropped. Safe to call twice."""
        if self.provider is None:
            return True
        try:
            self.provider.shutdown()
        except Exception:
            _log.exception("tracehouse: shutting down tracing failed")
            return False
        return True
