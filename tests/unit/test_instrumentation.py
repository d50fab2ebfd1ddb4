"""Unit tests of tracehouse.instrumentation: config, SDK set-up, propagation, distro, launcher.

The real OpenTelemetry SDK is used throughout. Set-ups that touch the process-wide tracer provider
(which can be set only once per process) run in a subprocess; the rest build a provider locally.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import sampling as sdk_sampling
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, format_span_id, format_trace_id

from tracehouse.instrumentation import ConfigError, InstrumentationConfig, TracingHandle, _setup, configure, launcher
from tracehouse.instrumentation.config import DEFAULT_ENDPOINT, DEFAULT_PROPAGATORS, SAMPLERS
from tracehouse.instrumentation.distro import ENV_DEFAULTS, TracehouseConfigurator, apply_env_defaults
from tracehouse.instrumentation.propagation import HEADER_GETTER, available_propagators, build_propagator

TRACE_ID = 0x463AC35C9F6413AD48485A3953BB6124
SPAN_ID = 0x0020000000000001


def clean_env() -> dict[str, str]:
    """The test process environment without any tracing settings that could leak in."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACEHOUSE_"))}


def run_python(code: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=dict(env if env is not None else clean_env()),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# --- config -------------------------------------------------------------------------------


def test_defaults() -> None:
    config = InstrumentationConfig.from_env({})
    assert config == InstrumentationConfig()
    assert config.endpoint == DEFAULT_ENDPOINT == "http://127.0.0.1:4318"
    assert config.propagators == DEFAULT_PROPAGATORS == ("tracecontext", "baggage", "b3multi")
    assert (config.sampler, config.sampler_ratio, config.sampler_rate) == ("always_on", 1.0, 10.0)
    assert config.sampler_parent_based
    assert config.log_correlation
    assert config.traces_url == "http://127.0.0.1:4318/v1/traces"
    assert config.validate() is config


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"OTEL_SERVICE_NAME": "otel"}, "otel"),
        ({"OTEL_SERVICE_NAME": "otel", "TRACEHOUSE_SERVICE_NAME": "th"}, "th"),
        ({"OTEL_SERVICE_NAME": " ", "OTEL_RESOURCE_ATTRIBUTES": "service.name=res"}, "res"),
        ({"OTEL_SERVICE_NAME": "otel", "OTEL_RESOURCE_ATTRIBUTES": "service.name=res"}, "otel"),
    ],
)
def test_service_name_precedence(environ: dict[str, str], expected: str) -> None:
    assert InstrumentationConfig.from_env(environ).service_name == expected


def test_endpoint_precedence() -> None:
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318/"}
    assert InstrumentationConfig.from_env(otel).traces_url == "http://otel:4318/v1/traces"
    signal = {**otel, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://sig:1/custom"}
    assert InstrumentationConfig.from_env(signal).traces_url == "http://sig:1/custom"
    # A Tracehouse base URL beats both, including the signal-specific OTel URL.
    ours = {**signal, "TRACEHOUSE_ENDPOINT": "https://th:4318"}
    config = InstrumentationConfig.from_env(ours)
    assert (config.endpoint, config.traces_endpoint, config.traces_url) == (
        "https://th:4318",
        None,
        "https://th:4318/v1/traces",
    )


@pytest.mark.parametrize(
    ("environ", "breakers_url"),
    [
        ({}, "http://127.0.0.1:4318/v1/breakers"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318/"}, "http://otel:4318/v1/breakers"),
        # Only the traces URL given: the breaker stats go to the same collector, not to the default.
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://sig:4318/v1/traces"}, "http://sig:4318/v1/breakers"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://sig:1/custom"}, "http://127.0.0.1:4318/v1/breakers"),
    ],
)
def test_breaker_stats_go_beside_the_traces(environ: dict[str, str], breakers_url: str) -> None:
    assert InstrumentationConfig.from_env(environ).breakers_url == breakers_url


def test_explicit_endpoint_drops_inherited_signal_url() -> None:
    config = InstrumentationConfig.from_env({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://sig:1/x"})
    assert config.replace(endpoint="http://mine:9").traces_url == "http://mine:9/v1/traces"
    assert config.replace(service_name="s").traces_url == "http://sig:1/x"


def test_propagators_precedence() -> None:
    assert InstrumentationConfig.from_env({"OTEL_PROPAGATORS": "b3"}).propagators == ("b3",)
    both = {"OTEL_PROPAGATORS": "b3", "TRACEHOUSE_PROPAGATORS": " tracecontext , b3multi ,"}
    assert InstrumentationConfig.from_env(both).propagators == ("tracecontext", "b3multi")


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, ("always_on", 1.0, 10.0)),
        # The default sampler takes no argument (the SDK ignores it too).
        ({"OTEL_TRACES_SAMPLER_ARG": "0.25"}, ("always_on", 1.0, 10.0)),
        ({"OTEL_TRACES_SAMPLER_ARG": "a lot"}, ("always_on", 1.0, 10.0)),
        ({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"}, ("ratio", 0.5, 10.0)),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"}, ("ratio", 0.5, 10.0)),
        ({"OTEL_TRACES_SAMPLER": "always_off"}, ("always_off", 1.0, 10.0)),
        ({"OTEL_TRACES_SAMPLER": "parentbased_always_off"}, ("always_off", 1.0, 10.0)),
        ({"OTEL_TRACES_SAMPLER": "ALWAYS_ON", "OTEL_TRACES_SAMPLER_ARG": "0.1"}, ("always_on", 1.0, 10.0)),
        ({"OTEL_TRACES_SAMPLER": "parentbased_always_on", "OTEL_TRACES_SAMPLER_ARG": "0.1"}, ("always_on", 1.0, 10.0)),
        ({"OTEL_TRACES_SAMPLER": "parentbased_ratelimit", "OTEL_TRACES_SAMPLER_ARG": "5"}, ("ratelimit", 1.0, 5.0)),
        ({"OTEL_TRACES_SAMPLER": "xray", "OTEL_TRACES_SAMPLER_ARG": "endpoint=x"}, ("always_on", 1.0, 10.0)),
        ({"OTEL_TRACES_SAMPLER_ARG": "0.5", "TRACEHOUSE_SAMPLER_RATIO": "0.75"}, ("ratio", 0.75, 10.0)),
        # Any TRACEHOUSE_SAMPLER* setting wins over the OTel sampler name.
        ({"OTEL_TRACES_SAMPLER": "always_off", "TRACEHOUSE_SAMPLER_RATIO": "0.75"}, ("ratio", 0.75, 10.0)),
        ({"OTEL_TRACES_SAMPLER": "always_off", "TRACEHOUSE_SAMPLER_RATE": "3"}, ("ratelimit", 1.0, 3.0)),
        ({"TRACEHOUSE_SAMPLER": "RateLimit", "OTEL_TRACES_SAMPLER": "always_off"}, ("ratelimit", 1.0, 10.0)),
        ({"TRACEHOUSE_SAMPLER": "always_off", "TRACEHOUSE_SAMPLER_RATE": "3"}, ("always_off", 1.0, 3.0)),
        (
            {"TRACEHOUSE_SAMPLER": "ratio", "TRACEHOUSE_SAMPLER_RATE": "3", "TRACEHOUSE_SAMPLER_RATIO": "0.1"},
            ("ratio", 0.1, 3.0),
        ),
    ],
)
def test_sampler_precedence(environ: dict[str, str], expected: tuple[str, float, float]) -> None:
    config = InstrumentationConfig.from_env(environ)
    assert (config.sampler, config.sampler_ratio, config.sampler_rate) == expected


def test_sampler_rate_and_ratio_without_a_name_are_ambiguous() -> None:
    with pytest.raises(ConfigError, match="name the sampler") as caught:
        InstrumentationConfig.from_env({"TRACEHOUSE_SAMPLER_RATE": "3", "TRACEHOUSE_SAMPLER_RATIO": "0.1"})
    assert caught.value.key == "sampler"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, True),
        ({"TRACEHOUSE_LOG_CORRELATION": "false"}, False),
        ({"TRACEHOUSE_LOG_CORRELATION": "Off"}, False),
        ({"OTEL_PYTHON_LOG_CORRELATION": "false"}, False),
        ({"OTEL_PYTHON_LOG_CORRELATION": "false", "TRACEHOUSE_LOG_CORRELATION": "1"}, True),
    ],
)
def test_log_correlation_setting(environ: dict[str, str], expected: bool) -> None:
    assert InstrumentationConfig.from_env(environ).log_correlation is expected


def test_resource_attributes_fill_identity() -> None:
    environ = {
        "OTEL_RESOURCE_ATTRIBUTES": "service.version=1.2,deployment.environment=prod,service.instance.id=i%2D1",
        "TRACEHOUSE_ENVIRONMENT": "staging",
    }
    config = InstrumentationConfig.from_env(environ)
    assert (config.service_version, config.environment, config.service_instance_id) == ("1.2", "staging", "i-1")


def test_headers_and_token() -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_HEADERS": "x-ignored=1",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-tenant=a%20b, x-env = prod",
        "TRACEHOUSE_TOKEN": "s3cret",
    }
    config = InstrumentationConfig.from_env(environ)
    assert config.headers == (("x-tenant", "a b"), ("x-env", "prod"))
    assert config.export_headers == {"x-tenant": "a b", "x-env": "prod", "Authorization": "Bearer s3cret"}


@pytest.mark.parametrize(
    ("variable", "value", "source"),
    [
        ("TRACEHOUSE_SAMPLER_RATIO", "half", "TRACEHOUSE_SAMPLER_RATIO"),
        ("TRACEHOUSE_SAMPLER_RATE", "fast", "TRACEHOUSE_SAMPLER_RATE"),
        ("TRACEHOUSE_LOG_CORRELATION", "maybe", "TRACEHOUSE_LOG_CORRELATION"),
    ],
)
def test_from_env_names_the_unparsable_variable(variable: str, value: str, source: str) -> None:
    with pytest.raises(ConfigError, match=source):
        InstrumentationConfig.from_env({variable: value})


@pytest.mark.parametrize(
    ("sampler", "key"),
    [
        ("parentbased_ratelimit", "sampler_rate"),
        ("traceidratio", "sampler_ratio"),
        ("parentbased_traceidratio", "sampler_ratio"),
    ],
)
def test_otel_sampler_arg_is_named_when_the_sampler_cannot_read_it(sampler: str, key: str) -> None:
    environ = {"OTEL_TRACES_SAMPLER": sampler, "OTEL_TRACES_SAMPLER_ARG": "many"}
    with pytest.raises(ConfigError, match=rf"{key} \(OTEL_TRACES_SAMPLER_ARG\)"):
        InstrumentationConfig.from_env(environ)


@pytest.mark.parametrize(
    ("changes", "key", "variable"),
    [
        ({"service_name": " "}, "service_name", "TRACEHOUSE_SERVICE_NAME"),
        ({"environment": "a\nb"}, "environment", "TRACEHOUSE_ENVIRONMENT"),
        ({"endpoint": "127.0.0.1:4318"}, "endpoint", "TRACEHOUSE_ENDPOINT"),
        ({"endpoint": "http://host:port"}, "endpoint", "TRACEHOUSE_ENDPOINT"),
        ({"traces_endpoint": "ftp://x/v1/traces"}, "traces_endpoint", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        ({"propagators": ("tracecontext", "nope")}, "propagators", "TRACEHOUSE_PROPAGATORS"),
        ({"propagators": ()}, "propagators", "TRACEHOUSE_PROPAGATORS"),
        ({"sampler_ratio": 1.5}, "sampler_ratio", "TRACEHOUSE_SAMPLER_RATIO"),
        ({"sampler_ratio": float("nan")}, "sampler_ratio", "TRACEHOUSE_SAMPLER_RATIO"),
        ({"sampler": "probabilistic"}, "sampler", "TRACEHOUSE_SAMPLER"),
        ({"sampler_rate": -1.0}, "sampler_rate", "TRACEHOUSE_SAMPLER_RATE"),
        ({"sampler_rate": float("inf")}, "sampler_rate", "TRACEHOUSE_SAMPLER_RATE"),
        ({"headers": (("bad name", "v"),)}, "headers", "TRACEHOUSE_HEADERS"),
        ({"token": "a b"}, "token", "TRACEHOUSE_TOKEN"),
    ],
)
def test_validate_names_the_bad_key(changes: dict[str, object], key: str, variable: str) -> None:
    config = InstrumentationConfig().replace(**changes)
    with pytest.raises(ValueError, match=rf"invalid {key} \({variable}\)") as caught:
        config.validate()
    assert isinstance(caught.value, ConfigError)
    assert caught.value.key == key


# --- SDK set-up (built locally, never installed globally) ------------------------------------


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def built(exporter: InMemorySpanExporter) -> Iterator[TracingHandle]:
    config = InstrumentationConfig(service_name="orders", service_version="2.0", environment="test")
    handle = _setup.build(config.validate(), exporter)
    yield handle
    assert handle.shutdown()


def finished_resource(handle: TracingHandle, exporter: InMemorySpanExporter) -> Mapping[str, object]:
    assert handle.provider is not None
    with handle.provider.get_tracer("test").start_as_current_span("work"):
        pass
    assert handle.force_flush(10_000)
    (span,) = exporter.get_finished_spans()
    return dict(span.resource.attributes)


def test_spans_carry_the_resource(built: TracingHandle, exporter: InMemorySpanExporter) -> None:
    attributes = finished_resource(built, exporter)
    host, pid = socket.gethostname(), os.getpid()
    assert attributes["service.name"] == "orders"
    assert attributes["service.version"] == "2.0"
    assert attributes["deployment.environment"] == attributes["deployment.environment.name"] == "test"
    assert attributes["host.name"] == host
    assert attributes["process.pid"] == pid
    assert attributes["service.instance.id"] == f"{host}:{pid}"
    assert not built.installed


def test_given_instance_id_is_kept(exporter: InMemorySpanExporter) -> None:
    handle = _setup.build(InstrumentationConfig(service_instance_id="pod-7"), exporter)
    try:
        assert finished_resource(handle, exporter)["service.instance.id"] == "pod-7"
    finally:
        handle.shutdown()


def test_sampler_is_parent_based_ratio(exporter: InMemorySpanExporter) -> None:
    handle = _setup.build(InstrumentationConfig(sampler="ratio", sampler_ratio=0.0), exporter)
    assert handle.provider is not None
    tracer = handle.provider.get_tracer("test")
    sampled_parent = NonRecordingSpan(SpanContext(TRACE_ID, SPAN_ID, is_remote=True, trace_flags=TraceFlags(1)))
    try:
        with tracer.start_as_current_span("root") as root:
            assert not root.get_span_context().trace_flags.sampled
        with tracer.start_as_current_span("child", context=trace.set_span_in_context(sampled_parent)) as child:
            assert child.get_span_context().trace_flags.sampled
            assert child.get_span_context().trace_id == TRACE_ID
    finally:
        handle.shutdown()


@pytest.mark.parametrize(
    ("changes", "root"),
    [
        ({}, "AlwaysOnSampler"),
        ({"sampler": "ratio", "sampler_ratio": 0.25}, "TraceIdRatioBased{0.25}"),
        ({"sampler": "ratelimit", "sampler_rate": 2.5}, "RateLimitingSampler{2.5/s}"),
        ({"sampler": "always_on"}, "AlwaysOnSampler"),
        ({"sampler": "always_off"}, "AlwaysOffSampler"),
    ],
)
def test_build_sampler_by_name(changes: dict[str, object], root: str) -> None:
    description = _setup.build_sampler(InstrumentationConfig().replace(**changes)).get_description()
    assert description.startswith(f"ParentBased{{root:{root},remoteParentSampled:AlwaysOnSampler,")
    assert set(_setup.ROOT_SAMPLERS) == set(SAMPLERS)


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"OTEL_TRACES_SAMPLER_ARG": "0.25"},
        {"OTEL_TRACES_SAMPLER": "always_on"},
        {"OTEL_TRACES_SAMPLER": "always_off"},
        {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"},
        {"OTEL_TRACES_SAMPLER": "traceidratio"},
        {"OTEL_TRACES_SAMPLER": "parentbased_always_on"},
        {"OTEL_TRACES_SAMPLER": "parentbased_always_off"},
        {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.125"},
        {"OTEL_TRACES_SAMPLER": "ParentBased_TraceIdRatio"},
        {"OTEL_TRACES_SAMPLER": "xray"},
    ],
)
def test_otel_sampler_variables_mean_what_they_mean_to_the_sdk(
    environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    expected = sdk_sampling._get_from_env_or_default().get_description()
    assert _setup.build_sampler(InstrumentationConfig.from_env(environ)).get_description() == expected


@pytest.mark.parametrize(
    ("environ", "parent_based"),
    [
        ({}, True),
        ({"OTEL_TRACES_SAMPLER": "always_off"}, False),
        ({"OTEL_TRACES_SAMPLER": "parentbased_always_off"}, True),
        # A Tracehouse sampler setting always follows the caller, whatever OTEL_TRACES_SAMPLER says.
        ({"OTEL_TRACES_SAMPLER": "always_off", "TRACEHOUSE_SAMPLER": "always_off"}, True),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "TRACEHOUSE_SAMPLER_RATE": "5"}, True),
    ],
)
def test_only_otel_names_without_parentbased_ignore_the_caller(environ: dict[str, str], parent_based: bool) -> None:
    config = InstrumentationConfig.from_env(environ)
    assert config.sampler_parent_based is parent_based
    sampled_parent = NonRecordingSpan(SpanContext(TRACE_ID, SPAN_ID, is_remote=True, trace_flags=TraceFlags(1)))
    decision = _setup.build_sampler(config.replace(sampler="always_off")).should_sample(
        trace.set_span_in_context(sampled_parent), TRACE_ID, "GET /"
    )
    assert decision.decision.is_sampled() is parent_based


def test_configure_with_a_sampler_follows_the_caller() -> None:
    code = """
        import os
        from opentelemetry import trace
        import tracehouse.instrumentation as ti
        os.environ["OTEL_TRACES_SAMPLER"] = "always_off"
        handle = ti.configure("svc", sampler="ratio")
        print(handle.config.sampler_parent_based, trace.get_tracer_provider().sampler.get_description())
        handle.shutdown()
    """
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("True ParentBased{root:TraceIdRatioBased{1.0},")


def test_install_failure_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    broken = InstrumentationConfig(propagators=("no-such-propagator",))  # not validated on purpose
    with caplog.at_level(logging.ERROR, logger="tracehouse.instrumentation"):
        handle = _setup.install(broken)
    assert not handle.active
    assert not handle.installed
    assert handle.force_flush()
    assert handle.shutdown()
    assert "tracing set-up failed" in caplog.text


# --- propagation ---------------------------------------------------------------------------


def remote_context(trace_flags: int = 1) -> Context:
    span = NonRecordingSpan(SpanContext(TRACE_ID, SPAN_ID, is_remote=False, trace_flags=TraceFlags(trace_flags)))
    return trace.set_span_in_context(span)


def test_inject_writes_w3c_and_b3_multi_headers() -> None:
    carrier: dict[str, str] = {}
    build_propagator(DEFAULT_PROPAGATORS).inject(carrier, context=remote_context())
    headers = {key.lower(): value for key, value in carrier.items()}
    assert headers["traceparent"] == f"00-{format_trace_id(TRACE_ID)}-{format_span_id(SPAN_ID)}-01"
    assert headers["x-b3-traceid"] == format_trace_id(TRACE_ID)
    assert headers["x-b3-spanid"] == format_span_id(SPAN_ID)
    assert headers["x-b3-sampled"] == "1"
    assert "b3" not in headers


def test_inject_single_b3_when_asked() -> None:
    carrier: dict[str, str] = {}
    build_propagator(["b3"]).inject(carrier, context=remote_context(trace_flags=0))
    assert carrier == {"b3": f"{format_trace_id(TRACE_ID)}-{format_span_id(SPAN_ID)}-0"}


def test_none_propagates_nothing() -> None:
    carrier: dict[str, str] = {}
    build_propagator(["none"]).inject(carrier, context=remote_context())
    assert carrier == {}
    assert "none" in available_propagators()


def extracted(carrier: Mapping[str, str]) -> SpanContext:
    context = build_propagator(DEFAULT_PROPAGATORS).extract(carrier, getter=HEADER_GETTER)
    return trace.get_current_span(context).get_span_context()


@pytest.mark.parametrize(
    "carrier",
    [
        {"b3": f"{TRACE_ID:032x}-{SPAN_ID:016x}-1"},
        {"X-B3-TraceId": f"{TRACE_ID:032x}", "X-B3-SpanId": f"{SPAN_ID:016x}", "X-B3-Sampled": "1"},
        {"traceparent": f"00-{TRACE_ID:032x}-{SPAN_ID:016x}-01"},
    ],
    ids=["b3-single", "b3-multi", "w3c"],
)
def test_extract(carrier: dict[str, str]) -> None:
    span_context = extracted(carrier)
    assert (span_context.trace_id, span_context.span_id) == (TRACE_ID, SPAN_ID)
    assert span_context.is_remote
    assert span_context.trace_flags.sampled


def test_extract_64_bit_b3_trace_id() -> None:
    span_context = extracted({"b3": f"{TRACE_ID & (2**64 - 1):016x}-{SPAN_ID:016x}"})
    assert span_context.trace_id == TRACE_ID & (2**64 - 1)


def test_header_getter_ignores_case() -> None:
    assert HEADER_GETTER.get({"X-B3-TraceId": "abc"}, "x-b3-traceid") == ["abc"]
    assert HEADER_GETTER.get({"a": "1"}, "b") is None
    assert HEADER_GETTER.keys({"a": "1", "B": "2"}) == ["a", "B"]


# --- process-wide set-up (subprocesses) -----------------------------------------------------


def test_import_is_cheap_and_server_free() -> None:
    result = run_python(
        """
        import sys
        import tracehouse.instrumentation
        heavy = ("clickhouse_connect", "chdb", "fastapi", "uvicorn", "dash", "grpc", "opentelemetry.sdk")
        print([m for m in sys.modules if m.split(".")[0] in heavy or m.startswith("opentelemetry.sdk")])
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


CONFIGURE_SCRIPT = """
    import json
    from opentelemetry import propagate, trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
    import tracehouse.instrumentation as ti

    handle = ti.configure("billing", environment="ci", propagators="tracecontext,b3multi")
    again = ti.configure("other")
    provider = trace.get_tracer_provider()
    carrier = {}
    span = NonRecordingSpan(SpanContext(1, 2, is_remote=False, trace_flags=TraceFlags(1)))
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    print(json.dumps({
        "installed": handle.installed,
        "same_handle": again is handle,
        "is_global": provider is handle.provider,
        "resource": dict(provider.resource.attributes),
        "headers": sorted(carrier),
        "url": handle.config.traces_url,
    }))
"""


def test_configure_installs_globally_once() -> None:
    env = {**clean_env(), "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9/"}
    result = run_python(CONFIGURE_SCRIPT, env)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["installed"]
    assert out["same_handle"]
    assert out["is_global"]
    assert out["resource"]["service.name"] == "billing"
    assert out["resource"]["deployment.environment"] == "ci"
    assert out["resource"]["service.instance.id"].endswith(f":{out['resource']['process.pid']}")
    assert out["headers"] == ["traceparent", "x-b3-sampled", "x-b3-spanid", "x-b3-traceid"]
    assert out["url"] == "http://127.0.0.1:9/v1/traces"
    assert "already configured" in result.stderr


def test_forked_worker_gets_its_own_instance_id() -> None:
    result = run_python(
        """
        import os
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from tracehouse.instrumentation import InstrumentationConfig, _setup

        handle = _setup.build(InstrumentationConfig(), InMemorySpanExporter())
        read, write = os.pipe()
        if os.fork() == 0:
            attributes = handle.provider.resource.attributes
            os.write(write, f"{attributes['service.instance.id']} {attributes['process.pid']} {os.getpid()}".encode())
            os._exit(0)
        os.wait()
        print(handle.provider.resource.attributes["process.pid"], os.read(read, 200).decode())
        handle.shutdown()
        """
    )
    assert result.returncode == 0, result.stderr
    parent_pid, child_instance, child_pid_attribute, child_pid = result.stdout.split()
    assert child_pid != parent_pid
    assert child_pid_attribute == child_pid
    assert child_instance == f"{socket.gethostname()}:{child_pid}"


def test_configure_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match="sampler_ratio"):
        configure("x", sampler_ratio=7.0, environ={})
    with pytest.raises(ConfigError, match="name the sampler"):
        configure("x", sampler_ratio=0.5, sampler_rate=3, environ={})
    with pytest.raises(ConfigError, match="unknown sampler 'sometimes'"):
        configure("x", sampler="sometimes", environ={})


def test_configure_sampler_and_log_correlation_arguments() -> None:
    env = {**clean_env(), "TRACEHOUSE_SAMPLER": "ratio", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9/"}
    result = run_python(
        """
        import logging
        from opentelemetry import trace
        import tracehouse.instrumentation as ti

        # A rate alone means the rate-limiting sampler, over TRACEHOUSE_SAMPLER=ratio in the environment.
        handle = ti.configure("quiet", sampler_rate=2.5, log_correlation=False)
        print(trace.get_tracer_provider().sampler.get_description())
        record = logging.getLogger("x").makeRecord("x", logging.INFO, "f", 1, "m", (), None)
        print(hasattr(record, "trace_id"), handle.config.sampler, handle.config.log_correlation)
        handle.shutdown()
        """,
        env,
    )
    assert result.returncode == 0, result.stderr
    description, fields = result.stdout.splitlines()
    assert description.startswith("ParentBased{root:RateLimitingSampler{2.5/s},")
    assert fields == "False ratelimit False"


def test_configurator_reads_the_environment() -> None:
    env = {**clean_env(), "TRACEHOUSE_SERVICE_NAME": "auto", "OTEL_SERVICE_NAME": "loser"}
    result = run_python(
        """
        from opentelemetry import trace
        from tracehouse.instrumentation.distro import TracehouseConfigurator
        TracehouseConfigurator().configure(auto_instrumentation_version="test")
        print(trace.get_tracer_provider().resource.attributes["service.name"])
        """,
        env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "auto"


def test_configurator_logs_bad_settings(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("TRACEHOUSE_SAMPLER_RATIO", "2")
    with caplog.at_level(logging.ERROR, logger="tracehouse.instrumentation"):
        # Must neither raise nor install anything.
        TracehouseConfigurator().configure()  # type: ignore[no-untyped-call]  # the OTel base is untyped
    assert "tracing disabled" in caplog.text
    assert "TRACEHOUSE_SAMPLER_RATIO" in caplog.text


def test_distro_sets_defaults_without_overriding() -> None:
    environ = {"OTEL_METRICS_EXPORTER": "prometheus"}
    apply_env_defaults(environ)
    assert environ == {**ENV_DEFAULTS, "OTEL_METRICS_EXPORTER": "prometheus"}


# --- launcher (everything short of exec) ---------------------------------------------------


def test_child_environment() -> None:
    args = launcher.build_parser().parse_args(
        ["--service-name", "svc", "--sampler-ratio", "0.5", "--", "python", "app.py", "--service-name", "app-flag"]
    )
    inherited = {"PYTHONPATH": "/lib:/cwd", "OTEL_SERVICE_NAME": "old", "TRACEHOUSE_SAMPLER": "always_off"}
    env = launcher.child_environment(args, inherited, "/cwd")
    boot = launcher.auto_instrumentation_dir()
    assert (Path(boot) / "sitecustomize.py").is_file()
    assert env["PYTHONPATH"] == os.pathsep.join([boot, "/lib", "/cwd"])
    assert env["TRACEHOUSE_SERVICE_NAME"] == "svc"
    assert env["TRACEHOUSE_SAMPLER_RATIO"] == "0.5"
    assert env["TRACEHOUSE_SAMPLER"] == "ratio"  # the ratio flag beats the inherited sampler
    assert "TRACEHOUSE_ENDPOINT" not in env
    assert "TRACEHOUSE_LOG_CORRELATION" not in env
    assert env["OTEL_PYTHON_DISTRO"] == env["OTEL_PYTHON_CONFIGURATOR"] == "tracehouse"
    assert InstrumentationConfig.from_env(env).service_name == "svc"
    assert args.command[-4:] == ["python", "app.py", "--service-name", "app-flag"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--sampler", "ratelimit", "--sampler-rate", "20"], ("ratelimit", "20.0", None)),
        (["--sampler-rate", "3"], ("ratelimit", "3.0", None)),
        (["--sampler", "always_off"], ("always_off", None, None)),
        (["--no-log-correlation"], (None, None, "false")),
        (["--log-correlation"], (None, None, "true")),
    ],
)
def test_sampler_and_log_flags(argv: list[str], expected: tuple[str | None, ...]) -> None:
    args = launcher.build_parser().parse_args([*argv, "--", "python", "app.py"])
    env = launcher.child_environment(args, {}, "/cwd")
    names = ("TRACEHOUSE_SAMPLER", "TRACEHOUSE_SAMPLER_RATE", "TRACEHOUSE_LOG_CORRELATION")
    assert tuple(env.get(name) for name in names) == expected
    config = InstrumentationConfig.from_env(env).validate()
    assert config.log_correlation is (expected[2] != "false")


def test_python_path_puts_boot_dir_first_once() -> None:
    boot = launcher.auto_instrumentation_dir()
    args = launcher.build_parser().parse_args(["true"])
    env = launcher.child_environment(args, {"PYTHONPATH": f"/a{os.pathsep}{boot}"}, "/cwd")
    assert env["PYTHONPATH"] == os.pathsep.join([boot, "/cwd", "/a"])


def test_missing_command_exits_127(capsys: pytest.CaptureFixture[str]) -> None:
    assert launcher.main(["--", "tracehouse-no-such-command"]) == launcher.EXIT_NOT_FOUND == 127
    assert "command not found: tracehouse-no-such-command" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--endpoint", "localhost:4318", "--", "true"], "invalid endpoint"),
        (["--propagators", "zipkin", "true"], "invalid propagators"),
        (["--sampler-ratio", "x", "true"], "invalid float value"),
        (["--sampler", "sometimes", "true"], "invalid choice: 'sometimes'"),
        (["--sampler-rate", "-1", "true"], "invalid sampler_rate"),
        (["--sampler-rate", "1", "--sampler-ratio", "0.5", "true"], "name the sampler"),
        (["--service-name", "x"], "no command given"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        launcher.main(argv)
    assert caught.value.code == 2
    assert message in capsys.readouterr().err
