"""Command line of the queries package: ``python -m queries {list,export,verify,lake} ...``."""

from __future__ import annotations

import argparse
import os
import sys

import duckdb

from ingest import cliargs, exitcodes
from ingest.config import ConfigError, load_toml, resolve_db_path
from ingest.store import StoreError
from queries.catalog import QUERIES
from queries.datasets import DATASETS
from queries.export import FORMATS, ExportError, export
from queries.filters import Filters, parse_time
from queries.manifest import verify


def cmd_list(args: argparse.Namespace) -> int:
    for name, dataset in DATASETS.items():
        print(f"{name}: {QUERIES[name].description}")
        print(f"    columns: {', '.join(dataset.columns)}")
    return exitcodes.OK


def cmd_export(args: argparse.Namespace) -> int:
    try:
        since = parse_time(args.since) if args.since else None
        until = parse_time(args.until) if args.until else None
        filters = Filters(since=since, until=until, service_principal_ids=tuple(args.service_principal or ()) or None,
                          job_id=args.job, identity_types=tuple(args.identity_type or ()) or None,
                          statuses=tuple(args.status or ()) or None, actions=tuple(args.action or ()) or None,
                          error_codes=tuple(args.error_code or ()) or None,
                          skip_categories=tuple(args.skip_category or ()) or None, identity=args.identity,
                          cycle_id=args.cycle, change_id=args.change)
        extra = {"allowed_domains": [d.lower() for d in args.allowed_domain]} if args.allowed_domain else {}
        if args.engine == "store":
            if args.lake or args.tenant:
                raise ExportError("--lake and --tenant need --engine duckdb or --engine spark")
            result = export(args.db, args.dataset, args.out, filters=filters, fmt=args.format, **extra)
        else:
            result = _export_lake(args, filters, extra)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exitcodes.USAGE
    except ValueError as exc:  # a bad date
        print(f"error: {exc}", file=sys.stderr)
        return exitcodes.USAGE
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exitcodes.FAILED
    except LakeExportFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exitcodes.FAILED
    print(f"exported {result.rows} row(s) of {args.dataset} to {result.path} (manifest {result.manifest_path})"
          + (f"; {result.escaped_cells} formula-like cell(s) neutralised" if result.escaped_cells else ""),
          file=sys.stderr)
    return exitcodes.OK


def _export_lake(args: argparse.Namespace, filters: Filters, extra: dict):
    """``export --engine duckdb|spark --lake URL``: the dataset over the lake (queries/lake_export.py). Errors that
    are the caller's (no lake given, an unknown tenant) raise ExportError; the others, LakeExportFailed."""
    from deltalake.exceptions import DeltaError

    from ingest.lake.layout import check_tenant
    from queries.lake_export import export_lake
    from queries.lake_read import lake_tenants
    from queries.lake_sql import LakeSQLError
    from queries.spark_engine import LakeMissing, SparkUnavailable

    lake = args.lake or os.environ.get("PROVLENS_LAKE")
    if not lake:
        raise ExportError(f"--engine {args.engine} needs --lake URL (a local folder, az:// or abfss://) "
                          "or PROVLENS_LAKE")
    try:
        tenants = [check_tenant(t) for t in args.tenant] if args.tenant else None
        if tenants:
            known = lake_tenants(lake)
            unknown = [t for t in tenants if t not in known]
            if unknown:
                raise ExportError(f"tenant {', '.join(unknown)} is not in the lake {lake} (it holds: "
                                  f"{', '.join(known) or 'no tenant yet'})")
        return export_lake(lake, args.dataset, args.out, engine=args.engine, tenants=tenants, filters=filters,
                           fmt=args.format, master=args.spark_master, **extra)
    except (LakeSQLError, ExportError):
        raise
    except ValueError as exc:  # a bad tenant name
        raise ExportError(str(exc)) from exc
    except SparkUnavailable as exc:
        raise LakeExportFailed(str(exc)) from exc
    except LakeMissing as exc:
        raise LakeExportFailed(str(exc)) from exc
    except (DeltaError, FileNotFoundError) as exc:
        raise LakeExportFailed(f"cannot read the lake {lake}: {str(exc).splitlines()[0] if str(exc) else exc}; "
                               "is a store copied there (python -m queries lake --db F --to URL)?") from exc
    except Exception as exc:
        if not type(exc).__module__.startswith(("pyspark", "py4j")):
            raise
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise LakeExportFailed(f"Spark could not answer {args.dataset} over {lake}: {first}") from exc


class LakeExportFailed(RuntimeError):
    """An export over the lake that could not run (no Spark or Java, a missing or unreadable lake): one line."""


def cmd_verify(args: argparse.Namespace) -> int:
    problems = verify(args.file)
    if problems:
        for problem in problems:
            print(f"error: {args.file}: {problem}", file=sys.stderr)
        return exitcodes.FAILED
    print(f"ok: {args.file} matches its manifest (SHA-256 and row count)")
    return exitcodes.OK


def build_parser() -> argparse.ArgumentParser:
    parser = cliargs.Parser(prog="python -m queries", description="Query and export provlens data.")
    sub = parser.add_subparsers(dest="command", required=True)
    lst = sub.add_parser("list", help="list the exportable datasets and their columns")
    lst.set_defaults(handler=cmd_list)
    exp = sub.add_parser("export", help="export a dataset to CSV or Parquet, with a manifest beside it")
    exp.add_argument("dataset", help="a dataset name from `python -m queries list`")
    exp.add_argument("--db", help="database file (default: PROVLENS_DB, provlens.toml, data/provlens.duckdb)")
    exp.add_argument("--since", help="RFC 3339 time, a date, or a duration ago (2w, 30d, 12h); inclusive")
    exp.add_argument("--until", help="RFC 3339 time, a date, or a duration ago; exclusive")
    exp.add_argument("--service-principal", action="append", metavar="ID",
                     help="keep this enterprise app (service principal object id); repeatable (default: all)")
    exp.add_argument("--job", metavar="JOB_ID", help="one provisioning job")
    exp.add_argument("--identity-type", action="append", metavar="TYPE",
                     help="Entra's identity type to keep (User, Group, ...; repeatable); cycles and sync-jobs "
                          "ignore it")
    # the event filters (queries/filters.py): the events, failures (not --skip-category) and skipped datasets
    for flag, what in (("--status", "an event status (success, failure, skipped, warning)"), ("--action", "an action"),
                       ("--error-code", "an error code"), ("--skip-category", "a skip category")):
        exp.add_argument(flag, action="append", metavar=flag.lstrip("-").split("-")[0].upper(),
                         help=f"events, failures, skipped: keep {what}; repeatable")
    exp.add_argument("--identity", metavar="WHO", help="events, failures, skipped: one identity (source UPN, target "
                                                       "userName, source or target object id; any case)")
    exp.add_argument("--cycle", metavar="CYCLE_ID", help="events, failures, skipped: one sync cycle")
    exp.add_argument("--change", metavar="CHANGE_ID", help="events, failures, skipped: one change id")
    exp.add_argument("--allowed-domain", action="append", metavar="DOMAIN",
                     help="violations: an allowed email domain (repeatable; default: derived from the data)")
    exp.add_argument("--engine", choices=("store", "duckdb", "spark"), default="store",
                     help="who answers: the store file (--db; default), DuckDB over the lake or Spark over the lake "
                          "(both need --lake)")
    exp.add_argument("--lake", metavar="URL", help="--engine duckdb/spark: the lake (a local folder, "
                                                   "az://container/path or abfss://...; default PROVLENS_LAKE)")
    exp.add_argument("--tenant", action="append", metavar="TENANT",
                     help="--engine duckdb/spark: keep this lake tenant's rows (repeatable; default: every tenant)")
    exp.add_argument("--spark-master", metavar="MASTER",
                     help="--engine spark: Spark master URL (default PROVLENS_SPARK_MASTER, else local[2])")
    exp.add_argument("--format", choices=list(FORMATS), default="csv", help="file format")
    exp.add_argument("--out", required=True, help="the file to write (its manifest is written beside it)")
    exp.set_defaults(handler=cmd_export)
    ver = sub.add_parser("verify", help="check an exported file against FILE.manifest.json")
    ver.add_argument("file", help="an exported file (FILE.manifest.json must be beside it)")
    ver.set_defaults(handler=cmd_verify)
    from queries.lake_cli import add_lake_parser  # copy into a Delta lake (issue 28)

    add_lake_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if hasattr(args, "db") and getattr(args, "engine", "store") == "store":
            args.db = resolve_db_path(args.db, load_toml())
        return args.handler(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exitcodes.USAGE
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exitcodes.DATABASE
    except duckdb.OutOfMemoryException as exc:
        print(f"error: the export ran out of memory even with the largest retry limit ({str(exc).splitlines()[0]}); "
              "narrow it with --since/--until, or free memory", file=sys.stderr)
        return exitcodes.FAILED
    except duckdb.Error as exc:  # a DuckDB file without provlens tables (issue 8: was a traceback)
        print(f"error: {getattr(args, 'db', '')} cannot answer this export ({type(exc).__name__}: "
              f"{str(exc).splitlines()[0]}); is it a provlens database? Run `python -m ingest migrate --db ...` to "
              "upgrade an old one, or point --db/PROVLENS_DB at a provlens database", file=sys.stderr)
        return exitcodes.DATABASE
