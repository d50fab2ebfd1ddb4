"""`python -m tracehouse.docs`: the configuration reference (docs/configuration.md), rendered from the
declarations that also build `--help` — every command's `Option` tuple, `tracehouse-run`'s parser and
the settings table of `tracehouse.instrumentation.config` — so the page cannot drift from the code.

It refuses to render while a command, a flag or an instrumentation setting has no row. It only reads
declarations: it never opens a store, binds a port or starts a process.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from tracehouse.options import Option

__all__ = ["Section", "main", "render", "sections", "undocumented"]

CommandPath = tuple[str, ...]  # a command's path in the parser: ("schema", "print")


@dataclass(frozen=True, slots=True)
class Section:
    """One command's table: the parser paths it documents, its options and a line about it."""

    title: str
    commands: tuple[CommandPath, ...]
    options: tuple[Option, ...]
    intro: str


def sections() -> tuple[Section, ...]:
    """The server-side commands, in the order the page lists them."""
    from tracehouse.config import COLLECTOR_OPTIONS, QUERY_OPTIONS, SERVE_OPTIONS
    from tracehouse.demo import DEMO_OPTIONS
    from tracehouse.schema import SCHEMA_OPTIONS

    return (
        Section("tracehouse serve", (("serve",),), SERVE_OPTIONS, _SERVE),
        Section("tracehouse collector", (("collector",),), COLLECTOR_OPTIONS, _COLLECTOR),
        Section("tracehouse query", (("query",),), QUERY_OPTIONS, _QUERY),
        Section("tracehouse schema print | apply", (("schema", "print"), ("schema", "apply")), SCHEMA_OPTIONS, _SCHEMA),
        Section("tracehouse demo", (("demo",),), DEMO_OPTIONS, _DEMO),
    )


_SERVE = "Collector, query API and dashboard in one process over one store (embedded ClickHouse by default)."
_COLLECTOR = (
    "The ingest side alone, against a ClickHouse server or cluster; run as many as the traffic needs, "
    "each with a data directory (its spool) of its own."
)
_QUERY = (
    "The query API (native, Zipkin, Jaeger), `/turbine.stream` and the dashboard alone, against a ClickHouse server."
)
_SCHEMA = (
    "The schema's DDL, written out (`print`) or applied (`apply`); `--cluster` for its ON CLUSTER form. "
    "Without `--clickhouse`, `print` writes the DDL for database `default` (or `--database`)."
)
_DEMO = "`tracehouse serve` plus the demo services and their traffic, all child processes of the demo."


# --- what the parsers declare ------------------------------------------------------------------


def parser_flags(parser: argparse.ArgumentParser | None = None) -> dict[CommandPath, set[str]]:
    """Every runnable command of `tracehouse` and its long flags (`--help` and `--version` aside)."""
    from tracehouse.cli import build_parser

    found: dict[CommandPath, set[str]] = {}
    _walk(parser or build_parser(), (), found)
    return found


def _walk(parser: argparse.ArgumentParser, path: CommandPath, found: dict[CommandPath, set[str]]) -> None:
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for action in subcommands:
        for name, sub in action.choices.items():
            _walk(sub, (*path, name), found)
    if path and not subcommands:
        found[path] = {flag for flag in _long_flags(parser._actions) if flag != "--help"}


def _long_flags(actions: Iterable[argparse.Action]) -> list[str]:
    return [flag for action in actions for flag in action.option_strings if flag.startswith("--")]


def undocumented() -> list[str]:
    """What the page would miss: commands, flags and instrumentation settings without a row."""
    missing: list[str] = []
    documented = {path: {o.flag for o in s.options} for s in sections() for path in s.commands}
    for path, flags in sorted(parser_flags().items()):
        name = "tracehouse " + " ".join(path)
        if path not in documented:
            missing.append(f"{name}: no section")
            continue
        missing += [f"{name} {flag}: no row" for flag in sorted(flags - documented[path])]
        missing += [f"{name} {flag}: a row but no such flag" for flag in sorted(documented[path] - flags)]
    return missing + _undocumented_settings()


def _undocumented_settings() -> list[str]:
    from tracehouse.instrumentation.config import ENV_VARS, InstrumentationConfig

    rows = dict(instrumentation_rows())
    missing = [f"instrumentation setting {f.name}: no row" for f in fields(InstrumentationConfig) if f.name not in rows]
    for key, variable in ENV_VARS.items():
        if variable not in rows.get(key, ""):
            missing.append(f"instrumentation setting {key}: its row does not name {variable}")
    return missing


def instrumentation_rows() -> list[tuple[str, str]]:
    """(setting, variables and meaning) from the table in `tracehouse.instrumentation.config`'s docstring."""
    from tracehouse.instrumentation import config

    lines = (config.__doc__ or "").splitlines()
    rules = [number for number, line in enumerate(lines) if line.startswith("====")]
    if len(rules) != 3:
        raise ValueError("tracehouse.instrumentation.config: its docstring has no settings table")
    column = re.match(r"=+\s+", lines[rules[0]])
    start = column.end() if column else 0
    rows: list[tuple[str, str]] = []
    for line in lines[rules[1] + 1 : rules[2]]:
        setting, text = line[:start].strip().strip("`"), line[start:].strip()
        if setting:
            rows.append((setting, text))
        elif rows and text:
            rows[-1] = (rows[-1][0], f"{rows[-1][1]} {text}")
    return [(setting, _markdown(text)) for setting, text in rows]


# --- rendering -------------------------------------------------------------------------------------


def render() -> str:
    """The whole page; `ValueError` naming every command, flag or setting without a row."""
    missing = undocumented()
    if missing:
        raise ValueError("the configuration reference would miss:\n  " + "\n  ".join(missing))
    parts = [_HEADER, *(_section(s) for s in sections()), _shared_names(), _tracehouse_run(), _instrumentation()]
    return "\n".join(part.rstrip("\n") + "\n" for part in parts)


_HEADER = """\
<!-- Generated by `python -m tracehouse.docs --output docs/configuration.md` from the option
     declarations in the code; edit those, not this file (tests/unit/test_docs.py compares them). -->
# Configuration reference

Every flag and environment variable of every command, and the variables a service's instrumentation
reads. For the server commands a flag wins over its `TRACEHOUSE_*` variable, which wins over the
default; `--help` on each command prints the same table. Units: seconds unless the flag says
otherwise; `BYTES` are plain byte counts.

Contents: [serve](#tracehouse-serve) · [collector](#tracehouse-collector) · [query](#tracehouse-query)
· [schema](#tracehouse-schema-print--apply) · [demo](#tracehouse-demo) ·
[tracehouse-run](#tracehouse-run) · [instrumentation variables](#instrumentation-variables)
"""


def _section(section: Section) -> str:
    rows = [_option_row(option) for option in section.options]
    return f"## {section.title}\n\n{section.intro}\n\n" + _table(("flag", "variable", "default", "what"), rows)


def _option_row(option: Option) -> tuple[str, ...]:
    flag = f"`{option.flag} {option.metavar}`" if option.metavar else f"`{option.flag}`"
    return (flag, f"`{option.env}`", _default(option), option.help)


def _default(option: Option) -> str:
    if option.default_text is not None:
        return option.default_text
    value = option.default
    if value is None or value == "":
        return "none"
    if option.metavar == "BYTES" and isinstance(value, int):
        return f"{value:,} ({_mebibytes(value)})"
    if option.metavar == "N" and isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _mebibytes(value: int) -> str:
    mib = value / 2**20
    return f"{mib / 1024:g} GiB" if mib >= 1024 else f"{mib:g} MiB"


def _shared_names() -> str:
    """Variables that two kinds of process read with different meanings (each process reads its own)."""
    from tracehouse.instrumentation.config import ENV_VARS

    server = {o.env: s.title for s in sections() for o in s.options}
    shared = sorted(set(server) & set(ENV_VARS.values()))
    lines = [f"* `{name}`: read by `{server[name]}` and by a service's instrumentation." for name in shared]
    body = "\n".join(lines) if lines else "None."
    return (
        "### Names read by servers and by services alike\n\n"
        "The server commands and the instrumentation of services share the `TRACEHOUSE_` prefix. "
        "These names mean different things to each, so do not export them into an environment both "
        f"kinds of process inherit:\n\n{body}\n"
    )


def _tracehouse_run() -> str:
    from tracehouse.instrumentation.launcher import _FLAG_ENV, _SELECTORS, build_parser

    rows = [_launcher_row(action, _FLAG_ENV) for action in build_parser()._actions if _documented(action)]
    selectors = ", ".join(f"`{k}={v}`" for k, v in _SELECTORS.items())
    return (
        "## tracehouse-run\n\n"
        "`tracehouse-run [options] [--] command [args ...]` (also `python -m tracehouse.instrumentation`) runs a "
        "Python program with tracing set up, without code changes. Each flag sets the variable beside it for "
        "the program, over anything inherited; every other setting is a variable only (next section). It also "
        f"sets {selectors}, so Tracehouse's distro and configurator are chosen even when others are installed, "
        "and puts OpenTelemetry's `sitecustomize` first on `PYTHONPATH`.\n\n"
    ) + _table(("flag", "sets", "what"), rows)


def _documented(action: argparse.Action) -> bool:
    return bool(action.option_strings) and "--help" not in action.option_strings


def _launcher_row(action: argparse.Action, flag_env: Mapping[str, str]) -> tuple[str, ...]:
    flags = ", ".join(action.option_strings)
    if action.choices:
        flags += " {" + ",".join(str(c) for c in action.choices) + "}"
    elif action.metavar:
        flags += f" {action.metavar}"
    variable = flag_env.get(action.dest)
    return (f"`{flags}`", f"`{variable}`" if variable else "—", action.help or "")


def _instrumentation() -> str:
    from tracehouse.demo.topology import SERVICE_ENV
    from tracehouse.instrumentation.distro import ENV_DEFAULTS

    settings = _table(("setting", "variables (highest precedence first) and meaning"), instrumentation_rows())
    defaults = _table(("variable", "value"), [(f"`{k}`", f"`{v}`") for k, v in ENV_DEFAULTS.items()])
    demo = _table(("variable", "value"), [(f"`{k}`", f"`{v}`") for k, v in SERVICE_ENV.items()])
    return (
        "## Instrumentation variables\n\n"
        "Read by `tracehouse-run`, by `configure()` (whose arguments win over them) and by "
        "`opentelemetry-instrument` with `OTEL_PYTHON_DISTRO=tracehouse OTEL_PYTHON_CONFIGURATOR=tracehouse`. "
        "Per setting: an explicit argument or flag, then `TRACEHOUSE_*`, then the standard `OTEL_*` "
        "variable, then the default. An empty variable counts as unset. A bad value is named in one log "
        "line and the service runs untraced (`configure()` raises `ConfigError` instead; `tracehouse-run` "
        "exits with status 2).\n\n"
        f"{settings}\n"
        "Spans always go out as OTLP/HTTP protobuf: `OTEL_EXPORTER_OTLP_PROTOCOL` and `OTEL_TRACES_EXPORTER` "
        "are not read by Tracehouse's configurator, so an endpoint must be an OTLP/HTTP port (4318), never "
        "the gRPC one. Breaker stats go to `{endpoint}/v1/breakers`: set a base URL "
        "(`TRACEHOUSE_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`), not only `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`.\n\n"
        "### Read by the OpenTelemetry SDK underneath\n\n"
        f"{_SDK_VARIABLES}\n"
        "### Set by the `tracehouse` distro when absent\n\n"
        "Tracehouse's configurator does not need them; they keep another configurator, if one is selected, "
        "sending traces the way Tracehouse receives them and no metrics or logs.\n\n"
        f"{defaults}\n"
        "### Set by `tracehouse demo` for its services\n\n"
        f"{demo}"
    )


_SDK_VARIABLES = """\
Not Tracehouse code, but honoured in a service it sets up:

* `OTEL_RESOURCE_ATTRIBUTES`: merged into every span's resource (the service name, version,
  environment and instance id set by Tracehouse win).
* `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_EXPORTER_OTLP_COMPRESSION` (`gzip`), `OTEL_EXPORTER_OTLP_CERTIFICATE`,
  `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`, `OTEL_EXPORTER_OTLP_CLIENT_KEY` and their `_TRACES_` forms:
  the OTLP/HTTP exporter's own settings.
* `OTEL_BSP_SCHEDULE_DELAY` (ms between exports, default 5000), `OTEL_BSP_MAX_QUEUE_SIZE` (2048: past it
  spans are dropped and counted), `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, `OTEL_BSP_EXPORT_TIMEOUT`: the batch
  span processor.
* `OTEL_SDK_DISABLED=true`: the tracer provider hands out no-op tracers.
* `OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=name,...`: instrumentations not loaded (`tracehouse-run --list` names them);
  `OTEL_PYTHON_EXCLUDED_URLS` and `OTEL_PYTHON_<LIBRARY>_EXCLUDED_URLS` (e.g. `OTEL_PYTHON_FASTAPI_EXCLUDED_URLS`):
  requests not traced by the HTTP server instrumentations.
"""


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """A table cell: pipes escaped, and `<`/`>` outside code spans as entities (not HTML tags)."""
    parts = text.replace("|", "\\|").split("`")
    return "`".join(part if n % 2 else part.replace("<", "&lt;").replace(">", "&gt;") for n, part in enumerate(parts))


def _markdown(rst: str) -> str:
    """The docstring's reStructuredText literals (``x``) as Markdown code."""
    return re.sub(r"``(.+?)``", r"`\1`", rst)


# --- command line ----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tracehouse.docs", description="Render the configuration reference (Markdown)."
    )
    parser.add_argument("--output", type=Path, metavar="FILE", help="write it to FILE instead of stdout")
    parser.add_argument("--check", type=Path, metavar="FILE", help="exit 1 if FILE differs from it")
    args = parser.parse_args(argv)
    try:
        text = render()
    except ValueError as exc:
        print(f"tracehouse.docs: error: {exc}", file=sys.stderr)
        return 2
    if args.check is not None:
        current = args.check.read_text(encoding="utf-8") if args.check.exists() else ""
        if current != text:
            print(f"{args.check} is out of date: python -m tracehouse.docs --output {args.check}", file=sys.stderr)
            return 1
        return 0
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
