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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
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


if __name__ == "__main__":
    sys.exit(main())
