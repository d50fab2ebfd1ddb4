"""Unit tests of log correlation: ids on ``logging`` records and the Sleuth-style default format.

Field values and formatters are tested in-process on local handlers and a local tracer provider;
what changes the process-wide ``logging`` module runs in a subprocess.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Sampler
from opentelemetry.trace import Tracer, format_span_id, format_trace_id

from tracehouse.instrumentation import InstrumentationConfig, _setup
from tracehouse.instrumentation.log_correlation import (
    FIELDS,
    LOG_FORMATS,
    Style,
    add_fields,
    adopt_default_formats,
    correlated_formatter,
    correlation_fields,
)


def tracer(sampler: Sampler) -> Iterator[Tracer]:
    provider = TracerProvider(sampler=sampler)
    yield provider.get_tracer("test")
    provider.shutdown()


@pytest.fixture
def sampling_tracer() -> Iterator[Tracer]:
    yield from tracer(ALWAYS_ON)


@pytest.fixture
def dropping_tracer() -> Iterator[Tracer]:
    yield from tracer(ALWAYS_OFF)


def record(message: str = "hello", **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("app", logging.INFO, __file__, 1, message, (), None)
    made.__dict__.update(extra)
    return made


def test_fields_inside_a_sampled_span(sampling_tracer: Tracer) -> None:
    with sampling_tracer.start_as_current_span("work") as span:
        fields = correlation_fields("orders")
    context = span.get_span_context()
    assert fields == {
        "trace_id": format_trace_id(context.trace_id),
        "span_id": format_span_id(context.span_id),
        "trace_sampled": True,
        "service_name": "orders",
    }
    assert tuple(fields) == FIELDS


def test_fields_have_ids_when_the_span_is_not_sampled(dropping_tracer: Tracer) -> None:
    with dropping_tracer.start_as_current_span("work") as span:
        fields = correlation_fields("orders")
    assert fields["trace_id"] == format_trace_id(span.get_span_context().trace_id) != "0" * 32
    assert fields["span_id"] == format_span_id(span.get_span_context().span_id)
    assert fields["trace_sampled"] is False


def test_fields_outside_a_span() -> None:
    assert correlation_fields("orders") == {
        "trace_id": "",
        "span_id": "",
        "trace_sampled": False,
        "service_name": "orders",
    }


def test_add_fields_keeps_values_the_caller_passed(sampling_tracer: Tracer) -> None:
    with sampling_tracer.start_as_current_span("work") as span:
        made = add_fields(record(trace_id="from-extra"), "orders")
    assert made.__dict__["trace_id"] == "from-extra"
    assert made.__dict__["span_id"] == format_span_id(span.get_span_context().span_id)


def test_correlated_formatter(sampling_tracer: Tracer) -> None:
    with sampling_tracer.start_as_current_span("work") as span:
        line = correlated_formatter().format(add_fields(record(), "orders"))
    context = span.get_span_context()
    assert line == f"INFO [orders,{format_trace_id(context.trace_id)},{format_span_id(context.span_id)}] app: hello"
    # A record made before correlation was set up (or by a logger that bypasses it) still formats.
    assert correlated_formatter().format(record()) == "INFO [,,] app: hello"


@pytest.mark.parametrize("style", ["%", "{", "$"])
def test_every_style_formats_the_same(style: Style) -> None:
    made = add_fields(record(), "orders")
    assert correlated_formatter(style, "%H").format(made) == "INFO [orders,,] app: hello"
    assert set(LOG_FORMATS) == {"%", "{", "$"}


def handler(formatter: logging.Formatter | None) -> logging.Handler:
    made = logging.StreamHandler(io.StringIO())
    made.setFormatter(formatter)
    return made


class JsonFormatter(logging.Formatter):
    pass


def test_only_default_formats_are_adopted() -> None:
    default = handler(logging.Formatter(logging.BASIC_FORMAT, "%H:%M"))
    default_brace = handler(logging.Formatter("{levelname}:{name}:{message}", style="{"))
    own = handler(logging.Formatter("%(asctime)s %(message)s"))
    subclass = handler(JsonFormatter(logging.BASIC_FORMAT))
    bare = handler(None)
    adopt_default_formats([default, default_brace, own, subclass, bare])
    assert default.formatter is not None
    assert default_brace.formatter is not None
    assert default.formatter._fmt == LOG_FORMATS["%"]
    assert default.formatter.datefmt == "%H:%M"
    assert default_brace.formatter._fmt == LOG_FORMATS["{"]
    assert own.formatter is not None
    assert own.formatter._fmt == "%(asctime)s %(message)s"
    assert isinstance(subclass.formatter, JsonFormatter)
    assert subclass.formatter._fmt == logging.BASIC_FORMAT
    assert bare.formatter is None


# --- process-wide (subprocesses) ------------------------------------------------------------

APP = """
    import json, logging, sys
    from opentelemetry import trace
    import tracehouse.instrumentation as ti
    from tracehouse.instrumentation.log_correlation import FIELDS

    BEFORE
    handle = ti.configure("orders", sampler="ratelimit", sampler_rate=0, environ=ENVIRON)
    AFTER
    log = logging.getLogger("app")
    log.warning("outside")
    with trace.get_tracer("t").start_as_current_span("work") as span:
        context = span.get_span_context()
        log.warning("inside")
        log.warning("extra", extra={"trace_id": "mine", "service_name": "theirs"})
    record = log.makeRecord("app", logging.INFO, "f", 1, "m", (), None)
    print(json.dumps({
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
        "fields": {name: getattr(record, name, None) for name in FIELDS},
    }))
    handle.shutdown()
"""


def run_app(before: str = "", after: str = "", environ: dict[str, str] | None = None) -> tuple[dict[str, Any], str]:
    code = textwrap.dedent(APP).replace("BEFORE", before).replace("AFTER", after)
    code = code.replace("ENVIRON", repr({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", **(environ or {})}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACEHOUSE_"))}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), result.stderr


def test_basic_config_after_set_up_gets_the_correlated_format() -> None:
    out, err = run_app(after="logging.basicConfig()")
    assert err.splitlines() == [
        "WARNING [orders,,] app: outside",
        f"WARNING [orders,{out['trace_id']},{out['span_id']}] app: inside",
        f"WARNING [theirs,mine,{out['span_id']}] app: extra",
    ]
    # Ids although the rate-0 sampler dropped the trace: sampling decides export only.
    assert out["fields"] == {"trace_id": "", "span_id": "", "trace_sampled": False, "service_name": "orders"}


def test_default_format_set_up_before_is_adopted() -> None:
    out, err = run_app(before="logging.basicConfig()")
    assert f"WARNING [orders,{out['trace_id']},{out['span_id']}] app: inside" in err.splitlines()


def test_implicit_basic_config_of_module_level_logging() -> None:
    _, err = run_app(after="logging.warning('implicit')")
    assert err.splitlines()[0] == "WARNING [orders,,] root: implicit"


def test_the_application_format_is_kept_and_can_use_the_fields() -> None:
    out, err = run_app(after="logging.basicConfig(format='%(message)s trace=%(trace_id)s span=%(span_id)s')")
    assert err.splitlines()[:2] == ["outside trace= span=", f"inside trace={out['trace_id']} span={out['span_id']}"]


def test_log_correlation_off_leaves_logging_alone() -> None:
    out, err = run_app(after="logging.basicConfig()", environ={"TRACEHOUSE_LOG_CORRELATION": "false"})
    assert err.splitlines()[:2] == ["WARNING:app:outside", "WARNING:app:inside"]
    assert out["fields"] == dict.fromkeys(FIELDS)


def test_a_failure_while_adding_fields_never_reaches_the_logging_call() -> None:
    code = textwrap.dedent(
        """
        import logging
        from opentelemetry import trace
        import tracehouse.instrumentation as ti

        ti.configure("orders", environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
        logging.basicConfig()

        def broken(*args, **kwargs):
            raise RuntimeError("no context today")

        trace.get_current_span = broken
        logging.getLogger("app").warning("still logged")
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACEHOUSE_"))}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == ["WARNING [,,] app: still logged"]


def test_a_failed_set_up_is_logged_and_swallowed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(service_name: str) -> None:
        raise RuntimeError("cannot patch logging")

    monkeypatch.setattr(_setup, "correlate_logs", broken)
    with caplog.at_level(logging.ERROR, logger="tracehouse.instrumentation"):
        _setup._correlate_logs(InstrumentationConfig())
    assert "log correlation set-up failed" in caplog.text
