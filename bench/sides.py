"""Baseline sides of the comparisons, run in their own child process: ``python -m bench.sides NAME ARGS``."""

from __future__ import annotations

import sys
import warnings


def ceiling(db: str, ndjson: str) -> None:
    """B2 ceiling: DuckDB read_json of the NDJSON into a plain table."""
    import duckdb

    con = duckdb.connect(db)
    con.execute("SET enable_progress_bar = false")
    con.execute("CREATE TABLE t AS SELECT * FROM read_json(?, format = 'newline_delimited')", [ndjson])
    con.close()


def pandas_export(db: str, out: str) -> None:
    """B7 baseline: pandas read_sql of the events dataset, then to_csv."""
    import duckdb
    import pandas as pd

    from queries.catalog import QUERIES

    sql = QUERIES["events"].sql
    for name, typed in (("$since", "TIMESTAMPTZ"), ("$until", "TIMESTAMPTZ"), ("$sps", "VARCHAR[]"),
                        ("$job", "VARCHAR")):
        sql = sql.replace(f"{name}::{typed}", f"NULL::{typed}")
    con = duckdb.connect(db, read_only=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = pd.read_sql(sql, con)
    frame.to_csv(out, index=False)


if __name__ == "__main__":
    {"ceiling": ceiling, "pandas_export": pandas_export}[sys.argv[1]](*sys.argv[2:])
