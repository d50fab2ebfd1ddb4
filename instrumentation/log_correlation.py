"""Log correlation, Sleuth style: the current trace and span ids on every stdlib ``logging`` record.

Each record gets ``trace_id`` and ``span_id`` (hex, empty outside a span; a trace id whose high 64 bits
are zero in 16 characters, as Sleuth logs its 64-bit ids), ``trace_sampled`` and
``service_name``, whether or not the span is sampled: sampling decides export only. A root handler
still on Python's default format switches to ``LEVEL [service,trace_id,span_id] logger: message``,
like Sleuth's ``[app,traceId,spanId]``. This must never raise into a logging call, never replace
a format or formatter class the application chose, and never refuse a record's ``extra`` fields.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from opentelemetry import trace
from opentelemetry.trace import format_span_id

from tracehouse.instrumentation.b3 import format_b3_trace_id

__all__ = [
    "FIELDS",
    "LOG_FORMATS",
    "Style",
    "add_fields",
    "adopt_default_formats",
    "correlate_logs",
    "correlated_formatter",
    "correlation_fields",
]

Style = Literal["%", "{", "$"]

#: The attributes set on every record.
FIELDS = ("trace_id", "span_id", "trace_sampled", "service_name")

#: The format given to default-format root handlers, per formatting style.
LOG_FORMATS: Mapping[Style, str] = {
    "%": "%(levelname)s [%(service_name)s,%(trace_id)s,%(span_id)s] %(name)s: %(message)s",
    "{": "{levelname} [{service_name},{trace_id},{span_id}] {name}: {message}",
    "$": "${levelname} [${service_name},${trace_id},${span_id}] ${name}: ${message}",
}

# What logging.basicConfig() uses when it is given no format: a handler with it chose none.
_STDLIB_FORMATS: Mapping[Style, str] = {
    "%": logging.BASIC_FORMAT,
    "{": "{levelname}:{name}:{message}",
    "$": "${levelname}:${name}:${message}",
}

_OUTSIDE_A_SPAN: Mapping[str, object] = {"trace_id": "", "span_id": "", "trace_sampled": False}
_MARK = "_tracehouse_correlation"
_lock = threading.Lock()


def correlation_fields(service_name: str) -> dict[str, object]:
    """The fields of a record made now: the current span's ids, or empty ids outside a span."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return {**_OUTSIDE_A_SPAN, "service_name": service_name}
    return {
        "trace_id": format_b3_trace_id(span_context.trace_id),
        "span_id": format_span_id(span_context.span_id),
        "trace_sampled": span_context.trace_flags.sampled,
        "service_name": service_name,
    }


def add_fields(record: logging.LogRecord, service_name: str) -> logging.LogRecord:
    """Set the fields ``record`` lacks; a value the caller passed in ``extra`` is kept."""
    for name, value in correlation_fields(service_name).items():
        record.__dict__.setdefault(name, value)
    return record


def correlate_logs(service_name: str) -> None:
    """Put the fields on every record from now on, and the correlated format on default-format
    root handlers, now and whenever ``logging.basicConfig`` runs without a format. Once per process.
    """
    with _lock:
        if getattr(logging.Logger.makeRecord, _MARK, False):
            return
        # Not setLogRecordFactory: a factory runs before ``extra`` is applied, and logging raises
        # KeyError for an ``extra={"trace_id": ...}`` that would overwrite a field it set.
        setattr(logging.Logger, "makeRecord", _correlating(logging.Logger.makeRecord, service_name))  # noqa: B010
        setattr(logging, "basicConfig", _adopting(logging.basicConfig))  # noqa: B010
        adopt_default_formats(logging.getLogger().handlers)


def _correlating(make_record: Callable[..., logging.LogRecord], service_name: str) -> Callable[..., logging.LogRecord]:
    @functools.wraps(make_record)
    def make_record_with_ids(self: logging.Logger, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(self, *args, **kwargs)
        # Logging a failure from here would recurse; the record then goes out without ids.
        with contextlib.suppress(Exception):
            add_fields(record, service_name)
        return record

    setattr(make_record_with_ids, _MARK, True)
    return make_record_with_ids


def _adopting(basic_config: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(basic_config)
    def basic_config_with_ids(**kwargs: Any) -> None:
        basic_config(**kwargs)
        if "format" not in kwargs:
            with contextlib.suppress(Exception):
                adopt_default_formats(logging.getLogger().handlers)

    return basic_config_with_ids


def adopt_default_formats(handlers: Iterable[logging.Handler]) -> None:
    """Give the correlated format to each handler whose formatter is a plain ``logging.Formatter``
    on Python's default format; every other handler is left as the application set it."""
    for handler in handlers:
        formatter = handler.formatter
        style = _default_style(formatter)
        if formatter is not None and style is not None:
            handler.setFormatter(correlated_formatter(style, formatter.datefmt))


def _default_style(formatter: logging.Formatter | None) -> Style | None:
    if formatter is None or type(formatter) is not logging.Formatter:
        return None
    for style, default in _STDLIB_FORMATS.items():
        if formatter._fmt == default:
            return style
    return None


def correlated_formatter(style: Style = "%", datefmt: str | None = None) -> logging.Formatter:
    """A formatter with the correlated format; records without the fields show empty ids."""
    defaults = {**_OUTSIDE_A_SPAN, "service_name": ""}
    return logging.Formatter(LOG_FORMATS[style], datefmt, style=style, defaults=defaults)
