"""`tracehouse collector`, `query` and `schema`: help, options from the serve declarations
(flag > TRACEHOUSE_* > default), and the refusal of the embedded store outside `serve`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tracehouse.cli import build_parser, main
from tracehouse.config import (
    COLLECTOR_OPTIONS,
    QUERY_OPTIONS,
    SERVE_OPTIONS,
    CollectorProcessConfig,
    QueryProcessConfig,
)
from tracehouse.options import resolve
from tracehouse.schema import SCHEMA_OPTIONS
from tracehouse.storage import ConfigError

SERVER = "http://alice:s3cret@ch.example:8123/otel"
COMMANDS = (["collector"], ["query"], ["schema"], ["schema", "print"], ["schema", "apply"])


def help_text(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*argv, "--help"])
    assert exited.value.code == 0
    return " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_every_new_command_has_help(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    out = help_text(capsys, argv)
    assert out.startswith(f"usage: tracehouse {' '.join(argv)}")


@pytest.mark.parametrize(
    ("argv", "options"),
    [(["collector"], COLLECTOR_OPTIONS), (["query"], QUERY_OPTIONS), (["schema", "apply"], SCHEMA_OPTIONS)],
    ids=["collector", "query", "schema"],
)
def test_each_flag_documents_its_variable(capsys: pytest.CaptureFixture[str], argv: list[str], options: tuple) -> None:
    out = help_text(capsys, argv).replace(" ", "")
    for option in options:
        assert option.flag in out
        assert f"env{option.env}" in out


def test_collector_and_query_options_are_the_serve_declarations() -> None:
    serve = {option.flag: option for option in SERVE_OPTIONS}
    for option in (*COLLECTOR_OPTIONS, *QUERY_OPTIONS):
        if option.flag in ("--clickhouse", "--data-dir"):
            assert option.env == serve[option.flag].env
        else:
            assert option is serve[option.flag]
    collector = {o.flag for o in COLLECTOR_OPTIONS}
    # serve alone: the UI (query's) and the embedded store (a collector needs a server)
    ui = {"--ui-port", "--api-token", "--allowed-hosts"}
    assert collector == {o.flag for o in SERVE_OPTIONS} - ui - {"--store-memory-limit"}
    assert {"--clickhouse", "--host", "--log-level", *ui} <= {o.flag for o in QUERY_OPTIONS}
    assert not {"--otlp-grpc-port", "--data-dir", "--link-interval"} & {o.flag for o in QUERY_OPTIONS}


def collector_config(argv: list[str], env: dict[str, str]) -> CollectorProcessConfig:
    args = build_parser().parse_args(["collector", *argv])
    return CollectorProcessConfig.from_values(resolve(args, COLLECTOR_OPTIONS, env))


def test_collector_flag_beats_environment_beats_default(tmp_path: Path) -> None:
    env = {"TRACEHOUSE_CLICKHOUSE": SERVER, "TRACEHOUSE_OTLP_HTTP_PORT": "5318", "TRACEHOUSE_DATA_DIR": str(tmp_path)}
    config = collector_config(["--otlp-http-port", "6318", "--link-interval", "5"], env)
    config.validate()
    assert config.collector.otlp_http_port == 6318
    assert config.collector.otlp_grpc_port == 4317
    assert config.store.dsn == SERVER
    assert config.data_dir == tmp_path
    assert config.link_interval == 5


def test_query_config_from_flags_and_environment() -> None:
    args = build_parser().parse_args(["query", "--ui-port", "17000"])
    config = QueryProcessConfig.from_values(resolve(args, QUERY_OPTIONS, {"TRACEHOUSE_CLICKHOUSE": SERVER}))
    config.validate()
    assert (config.query.ui_port, config.store.database) == (17000, "otel")


@pytest.mark.parametrize("command", ["collector", "query"])
@pytest.mark.parametrize(
    ("argv", "env", "says"),
    [
        ([], {}, "needs a ClickHouse server"),
        (["--clickhouse", "chdb:///var/lib/tracehouse/clickhouse"], {}, "cannot use the embedded store"),
        ([], {"TRACEHOUSE_CLICKHOUSE": "chdb:///var/lib/tracehouse/clickhouse"}, "cannot use the embedded store"),
    ],
    ids=["no DSN", "embedded flag", "embedded env"],
)
def test_collector_and_query_refuse_the_embedded_store(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    argv: list[str],
    env: dict[str, str],
    says: str,
) -> None:
    monkeypatch.delenv("TRACEHOUSE_CLICKHOUSE", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main([command, *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tracehouse {command}: error: clickhouse: `tracehouse {command}`")
    assert says in err
    assert "http(s)://" in err
    if "embedded" in says:
        assert "tracehouse serve" in err


def test_the_refusal_from_a_real_process(tmp_path: Path) -> None:
    """The installed entry point, in a process of its own: exit 2, one clear line, no listener started."""
    done = subprocess.run(
        [sys.executable, "-m", "tracehouse", "collector", "--clickhouse", f"chdb://{tmp_path}/ch"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"tracehouse collector: error: clickhouse: `tracehouse collector` cannot use the embedded store "
        f"chdb://{tmp_path}/ch: one process owns it, so collector, query API and UI share it only inside "
        "`tracehouse serve`. Run that, or give `tracehouse collector` a ClickHouse server: "
        "--clickhouse http(s)://user:pass@host:8123/db"
    ]
    assert not (tmp_path / "ch").exists()


def test_collector_ports_must_differ() -> None:
    config = collector_config(["--zipkin-port", "4318"], {"TRACEHOUSE_CLICKHOUSE": SERVER})
    with pytest.raises(ConfigError, match=r"^ports"):
        config.validate()


def test_schema_cluster_needs_a_server(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["schema", "apply", "--clickhouse", f"chdb://{tmp_path}/ch", "--cluster", "c"]) == 2
    assert "--cluster needs a ClickHouse server" in capsys.readouterr().err
    assert not (tmp_path / "ch").exists()


@pytest.mark.parametrize(("flag", "value"), [("--database", "x;DROP"), ("--cluster", "a b")])
def test_schema_refuses_names_that_are_not_identifiers(
    capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    assert main(["schema", "print", "--clickhouse", SERVER, flag, value]) == 2
    err = capsys.readouterr().err
    assert "is not" in err
    assert value in err
