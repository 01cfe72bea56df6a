"""``python -m queries lake --db F --to URL [--tenant T] [--full] [--optimize]``: copy a store's source tables into a
Delta lake, incrementally (ingest/lake/copy.py). One summary line on stderr; errors are one line with an exit code
from ingest/exitcodes.py (bad URL or tenant 2, refused credentials 4, unreachable storage 5, store problems 6)."""

from __future__ import annotations

import argparse
import sys

from ingest import exitcodes


def add_lake_parser(sub) -> None:
    lake = sub.add_parser("lake", help="copy the store's source tables into a Delta lake (local, az://, abfss://), "
                                       "rewriting only the days that changed since the last copy")
    lake.add_argument("--db", help="database file (default: PROVLENS_DB, provlens.toml, data/provlens.duckdb)")
    lake.add_argument("--to", required=True, metavar="URL",
                      help="the lake: a directory, az://CONTAINER/PATH or abfss://CONTAINER@ACCOUNT.dfs.core."
                           "windows.net/PATH (Azure credentials from the AZURE_STORAGE_* variables)")
    lake.add_argument("--tenant", help="the lake_tenant the rows go to (default: the store's single events.tenant_id)")
    lake.add_argument("--full", action="store_true",
                      help="ignore what earlier copies recorded and replace all of the tenant's partitions")
    lake.add_argument("--optimize", action="store_true",
                      help="afterwards compact each table's small files and vacuum files unreferenced for 7 days")
    lake.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    lake.set_defaults(handler=cmd_lake)


def cmd_lake(args: argparse.Namespace) -> int:
    import duckdb

    from ingest.dbfile import StoreError
    from ingest.lake.command import copy_db, summary
    from ingest.lake.errors import explain, scrub

    try:
        report = copy_db(args.db, args.to, args.tenant, full=args.full, quiet=args.quiet, optimize=args.optimize)
    except StoreError:
        raise  # the CLI's own handling (exit 6)
    except duckdb.Error as exc:  # only the store is read with DuckDB
        print(f"error: {args.db} cannot be copied ({type(exc).__name__}: {scrub(str(exc).splitlines()[0])}); is it "
              "a provlens database? Run `python -m ingest migrate --db ...` to upgrade an old one", file=sys.stderr)
        return exitcodes.DATABASE
    except Exception as exc:  # noqa: BLE001 - one clear line (never a traceback, never a secret)
        code, line = explain(exc, args.to)
        print(f"error: {line}", file=sys.stderr)
        return code
    print(summary(report, args.to), file=sys.stderr)
    return exitcodes.OK
