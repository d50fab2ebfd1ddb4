"""Runs `tracehouse collector` or `tracehouse query` — the real process code, `tracehouse.distributed`
— over an embedded store, which the CLI refuses (one process owns it; the halves are meant for a
ClickHouse server). Tests run the halves one after the other on one data directory, so the process
wiring is exercised on every machine, not only where a Docker engine gives a ClickHouse server.

Usage: python split_half.py collector|query [the command's flags]
"""

from __future__ import annotations

import sys

from tracehouse.cli import build_parser
from tracehouse.config import COLLECTOR_OPTIONS, QUERY_OPTIONS, CollectorProcessConfig, QueryProcessConfig
from tracehouse.distributed import run_collector, run_query
from tracehouse.logs import setup_logging
from tracehouse.options import resolve


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "collector":
        collector = CollectorProcessConfig.from_values(resolve(args, COLLECTOR_OPTIONS))
        collector.collector.validate()  # everything `validate()` checks but the server DSN
        setup_logging(collector.log_level)
        run_collector(collector)
    else:
        query = QueryProcessConfig.from_values(resolve(args, QUERY_OPTIONS))
        query.query.validate()
        setup_logging(query.log_level)
        run_query(query)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
