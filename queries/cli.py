"""Command line of the queries package: ``python -m queries {list,export} ...``."""

from __future__ import annotations

import argparse
import sys

from ingest import exitcodes
from ingest.config import ConfigError, load_toml, resolve_db_path
from ingest.store import StoreError
from queries.catalog import QUERIES
from queries.export import export
from queries.filters import Filters, parse_time

EXPORTABLE = ["events"]


def cmd_list(args: argparse.Namespace) -> int:
    for name in EXPORTABLE:
        print(f"{name}: {QUERIES[name].description}")
    return exitcodes.OK


def cmd_export(args: argparse.Namespace) -> int:
    if args.dataset not in EXPORTABLE:
        print(f"error: unknown dataset {args.dataset!r}; choose one of: {', '.join(EXPORTABLE)}", file=sys.stderr)
        return exitcodes.USAGE
    try:
        since = parse_time(args.since) if args.since else None
        until = parse_time(args.until) if args.until else None
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exitcodes.USAGE
    if since and until and until <= since:
        print("error: --until must be after --since", file=sys.stderr)
        return exitcodes.USAGE
    filters = Filters(since=since, until=until, service_principal_ids=tuple(args.service_principal or ()) or None)
    try:
        result = export(args.db, args.dataset, args.out, filters=filters, fmt=args.format)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exitcodes.FAILED
    print(f"exported {result.rows} row(s) of {args.dataset} to {result.path}"
          + (f" ({result.escaped_cells} formula-like cell(s) neutralised)" if result.escaped_cells else ""),
          file=sys.stderr)
    return exitcodes.OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m queries", description="Query and export provlens data.")
    sub = parser.add_subparsers(dest="command", required=True)
    lst = sub.add_parser("list", help="list the exportable datasets")
    lst.set_defaults(handler=cmd_list)
    exp = sub.add_parser("export", help="export a dataset to CSV or Parquet")
    exp.add_argument("dataset")
    exp.add_argument("--db")
    exp.add_argument("--since", help="ISO-8601 time or relative (30d, 12h); inclusive")
    exp.add_argument("--until", help="ISO-8601 time or relative; exclusive")
    exp.add_argument("--service-principal", action="append", metavar="ID", help="repeatable")
    exp.add_argument("--format", choices=["csv", "parquet"], default="csv")
    exp.add_argument("--out", required=True)
    exp.set_defaults(handler=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if hasattr(args, "db"):
            args.db = resolve_db_path(args.db, load_toml())
        return args.handler(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exitcodes.USAGE
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exitcodes.DATABASE
