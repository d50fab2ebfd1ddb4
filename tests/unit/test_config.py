"""Configuration: flags > TRACEHOUSE_* > defaults, and validate() naming the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracehouse.cli import build_parser
from tracehouse.config import QUERY_OPTIONS, SERVE_OPTIONS, ServeConfig, kept_by_store
from tracehouse.options import byte_size, resolve
from tracehouse.storage import ConfigError, StoreConfig


def config_for(argv: list[str], env: dict[str, str] | None = None) -> ServeConfig:
    args = build_parser().parse_args(["serve", *argv])
    return ServeConfig.from_values(resolve(args, SERVE_OPTIONS, env or {}))


def test_defaults() -> None:
    config = config_for([], {})
    assert config.collector.host == "127.0.0.1"
    assert (config.collector.otlp_http_port, config.collector.otlp_grpc_port, config.query.ui_port) == (
        4318,
        4317,
        16686,
    )
    assert config.store.dsn == f"chdb://{config.data_dir / 'clickhouse'}"
    config.validate()


def test_flag_beats_environment_beats_default(tmp_path: Path) -> None:
    env = {"TRACEHOUSE_UI_PORT": "17000", "TRACEHOUSE_OTLP_HTTP_PORT": "5318", "TRACEHOUSE_DATA_DIR": str(tmp_path)}
    config = config_for(["--ui-port", "18000"], env)
    assert config.query.ui_port == 18000
    assert config.collector.otlp_http_port == 5318
    assert config.data_dir == tmp_path
    assert config.store.dsn == f"chdb://{tmp_path / 'clickhouse'}"


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ValueError, match="TRACEHOUSE_UI_PORT='abc' is not valid for --ui-port"):
        config_for([], {"TRACEHOUSE_UI_PORT": "abc"})


@pytest.mark.parametrize(
    ("argv", "key"),
    [
        (["--ui-port", "70000"], "ui_port"),
        (["--otlp-http-port", "-1"], "otlp_http_port"),
        (["--ttl-days", "0"], "ttl_days"),
        (["--log-level", "loud"], "log_level"),
        (["--flush-interval", "0"], "flush_interval"),
        (["--clickhouse", "mysql://x"], "clickhouse"),
        (["--clickhouse", "chdb://relative/path"], "clickhouse"),
        (["--ui-port", "4318"], "ports"),
        (["--ingest-token", "short"], "ingest_token"),
        (["--ingest-token", "has a space"], "ingest_token"),
        (["--api-token", "short"], "api_token"),
        (["--hystrix-streams", "not-a-url"], "hystrix_streams"),
        (["--store-memory-limit", "1000"], "store_memory_limit"),
        (["--zipkin-port", "16686"], "ports"),  # was found only when the second listener failed to bind
        (["--max-queued-spans", "0"], "max_queued_spans"),  # was told as flush_spans, a name of no flag
    ],
)
def test_validate_names_the_bad_key(argv: list[str], key: str) -> None:
    with pytest.raises(ConfigError, match=f"^{key}"):
        config_for(argv).validate()


def test_dsn_password_is_redacted() -> None:
    config = StoreConfig(dsn="https://alice:s3cret@ch.example:8443/otel")
    assert "s3cret" not in config.redacted_dsn()
    assert config.database == "otel"
    config.validate()


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("https://alice:s3cret@ch.example:8443/otel", "https://alice:***@ch.example:8443/otel"),
        ("https://alice:s3c@r/t x@ch.example:8443/otel", "https://alice:***@ch.example:8443/otel"),
        # clickhouse-connect takes a token in the query; it was logged whole (security review)
        (
            "https://ch.example:8443/otel?access_token=s3cret&compress=1",
            "https://ch.example:8443/otel?access_token=***&compress=1",
        ),
        # review: a port is not a password (the host, port and path were hidden), nor ';' a way around
        ("http://ch:8123/db?user=me@corp.com", "http://ch:8123/db?user=me@corp.com"),
        ("http://ch:8123/db?a=1;token=s3cret", "http://ch:8123/db?a=1;token=***"),
        ("https://s3cret@ch.example/db", "https://***@ch.example/db"),
        ("https://alice:p@ss@ch.example/db", "https://alice:***@ch.example/db"),
    ],
)
def test_dsn_secrets_are_redacted(dsn: str, shown: str) -> None:
    assert StoreConfig(dsn=dsn).redacted_dsn() == shown


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("268435456", 268435456),
        ("256 MiB", 256 * 1024**2),
        ("1GiB", 1024**3),
        ("1.5 GB", 1_500_000_000),
        ("64k", 65536),
    ],
)
def test_byte_options_take_the_sizes_help_shows(text: str, size: int) -> None:
    assert byte_size(text) == size  # "768 MiB" is how --help shows the default; it was refused
    assert config_for(["--store-memory-limit", text]).store.memory_limit == size


@pytest.mark.parametrize("text", ["MiB", "12 parsecs", "-1", "0.5"])
def test_a_size_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"size|bytes|float"):
        byte_size(text)


def test_allowed_hosts_are_an_option_of_serve_and_query() -> None:
    assert config_for(["--allowed-hosts", "tracehouse.lan, ops.example"]).query.allowed_hosts == (
        "tracehouse.lan",
        "ops.example",
    )
    assert config_for([], {"TRACEHOUSE_ALLOWED_HOSTS": "*"}).query.allowed_hosts == ("*",)
    assert "--allowed-hosts" in {option.flag for option in QUERY_OPTIONS}


def test_without_ttl_days_the_store_keeps_its_retention_and_the_collector_follows_it() -> None:
    # --ttl-days defaulted to 7 and was applied: a store kept 30 days was cut to 7 by a plain restart.
    unsaid = config_for([])
    assert (unsaid.store.ttl_days, unsaid.store.retention_given) == (7, False)
    assert kept_by_store(unsaid.collector, unsaid.store, 30).max_span_age == 30 * 86400
    asked = config_for(["--ttl-days", "14"])
    assert (asked.store.ttl_days, asked.store.retention_given) == (14, True)
    assert kept_by_store(asked.collector, asked.store, 30).max_span_age == 14 * 86400  # the store is changed to 14


def test_the_log_level_is_read_in_any_case() -> None:
    config = config_for([], {"TRACEHOUSE_LOG_LEVEL": "DEBUG"})
    config.validate()
    assert config.log_level == "debug"


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["--help"], ["serve", "--help"], ["demo", "--help"]):
        with pytest.raises(SystemExit) as exited:
            build_parser().parse_args(command)
        assert exited.value.code == 0
        out = capsys.readouterr().out
        assert "usage: tracehouse" in out
    # each serve flag documents its environment variable
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    out = capsys.readouterr().out
    for option in SERVE_OPTIONS:
        assert option.env in out.replace("\n", " ").replace("  ", " ").replace(" ", "") or option.env in out
