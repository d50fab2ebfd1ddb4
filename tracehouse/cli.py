"""The `tracehouse` command: parses flags (and `TRACEHOUSE_*` variables), hands off to a
component, and turns known failures into one clear line and an exit code."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tracehouse import __version__
from tracehouse.options import add_options, resolve

DESCRIPTION = """Tracehouse: distributed tracing and circuit-breaker health for Python microservices.
OpenTelemetry (OTLP) in, ClickHouse underneath, a query API and dashboard on top."""


def build_parser() -> argparse.ArgumentParser:
    from tracehouse.config import SERVE_OPTIONS
    from tracehouse.demo import DEMO_OPTIONS

    parser = argparse.ArgumentParser(prog="tracehouse", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"tracehouse {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = commands.add_parser(
        "serve",
        help="run collector, query API and UI in one process (embedded ClickHouse by default)",
        description="Run the all-in-one server: OTLP receivers, query API and UI over one store. "
        "Stops cleanly (flushing queued spans) on Ctrl-C or SIGTERM.",
    )
    add_options(serve, SERVE_OPTIONS)
    demo = commands.add_parser(
        "demo",
        help="start the server plus instrumented example services sending traffic",
        description="Start `tracehouse serve` and example services launched by tracehouse-run, "
        "send them traffic, print the UI address. Ctrl-C stops everything it started.",
    )
    add_options(demo, DEMO_OPTIONS)
    _add_distributed(commands)
    return parser


def _add_distributed(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from tracehouse.config import COLLECTOR_OPTIONS, QUERY_OPTIONS
    from tracehouse.schema import SCHEMA_OPTIONS

    collector = commands.add_parser(
        "collector",
        help="run the receivers alone against a ClickHouse server (any number of them)",
        description="Run the ingest side of `tracehouse serve` against a ClickHouse server or cluster: "
        "OTLP/gRPC, OTLP/HTTP, Zipkin v2, breaker stats (POST /v1/breakers), hystrix.stream pulls and the "
        "dependency linker. Stateless but for its spool; run as many as the traffic needs. Needs the "
        "schema (`tracehouse schema apply`). Stops cleanly (flushing queued spans) on Ctrl-C or SIGTERM.",
    )
    add_options(collector, COLLECTOR_OPTIONS)
    query = commands.add_parser(
        "query",
        help="run the query API and dashboard alone against a ClickHouse server",
        description="Run the read side of `tracehouse serve` against a ClickHouse server or cluster: the "
        "query API (native, Zipkin and Jaeger shapes, /turbine.stream) and the dashboard on the UI port. "
        "Needs the schema (`tracehouse schema apply`).",
    )
    add_options(query, QUERY_OPTIONS)
    schema = commands.add_parser(
        "schema",
        help="print or apply the ClickHouse schema (one node, or a cluster with --cluster)",
        description="The schema's DDL: the numbered migrations as `serve` applies them, or with --cluster "
        "their cluster form (Replicated*MergeTree local tables and Distributed tables ON CLUSTER, spans "
        "sharded by cityHash64(TraceId)). Idempotent; the schema version is recorded in the database.",
    )
    actions = schema.add_subparsers(dest="action", metavar="ACTION", required=True)
    for action, text in (
        ("print", "write the DDL of every migration to stdout (for clickhouse-client --multiquery)"),
        ("apply", "apply the migrations the database has not recorded yet to --clickhouse, with progress"),
    ):
        add_options(actions.add_parser(action, help=text, description=text[0].upper() + text[1:] + "."), SCHEMA_OPTIONS)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command in ("collector", "query"):
            return _distributed(args)
        if args.command == "schema":
            return _schema(args)
        from tracehouse.demo import run_demo

        return run_demo(args)
    except KeyboardInterrupt:
        return 130
    except (ValueError, OSError) as exc:
        print(f"tracehouse {args.command}: error: {exc}", file=sys.stderr)
        return 2


def _serve(args: argparse.Namespace) -> int:
    from tracehouse.config import SERVE_OPTIONS, ServeConfig
    from tracehouse.logs import setup_logging
    from tracehouse.serve import serve
    from tracehouse.storage import StorageError

    config = ServeConfig.from_values(resolve(args, SERVE_OPTIONS))
    config.validate()
    setup_logging(config.log_level)
    try:
        serve(config)
    except StorageError as exc:
        print(f"tracehouse serve: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _distributed(args: argparse.Namespace) -> int:
    from tracehouse.config import COLLECTOR_OPTIONS, QUERY_OPTIONS, CollectorProcessConfig, QueryProcessConfig
    from tracehouse.distributed import run_collector, run_query
    from tracehouse.logs import setup_logging
    from tracehouse.storage import StorageError

    config: CollectorProcessConfig | QueryProcessConfig
    if args.command == "collector":
        config = CollectorProcessConfig.from_values(resolve(args, COLLECTOR_OPTIONS))
    else:
        config = QueryProcessConfig.from_values(resolve(args, QUERY_OPTIONS))
    config.validate()
    setup_logging(config.log_level)
    try:
        if isinstance(config, CollectorProcessConfig):
            run_collector(config)
        else:
            run_query(config)
    except StorageError as exc:
        print(f"tracehouse {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _schema(args: argparse.Namespace) -> int:
    from tracehouse.schema import run_schema
    from tracehouse.storage import StorageError

    try:
        return run_schema(args)
    except StorageError as exc:
        if isinstance(exc, ValueError):  # a ConfigError: exit 2 like every bad setting
            raise
        print(f"tracehouse schema {args.action}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
