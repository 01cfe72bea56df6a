"""Read-only access for pages, exports and benchmarks: short-lived connections, bound parameters.

A connection is opened per call and closed at once, so the dashboard never holds DuckDB's lock
while an ingest wants to write; a briefly locked file is retried, never shown to a person.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import pandas as pd

from ingest.store import StoreError, connect_with_retry
from queries.catalog import QUERIES
from queries.filters import Filters

_PARAM = re.compile(r"\$([A-Za-z_]\w*)")


class DatabaseMissing(StoreError):
    """The configured database file does not exist yet."""


@contextmanager
def read_connection(db_path: str, *, lock_timeout: float = 20.0) -> Iterator[duckdb.DuckDBPyConnection]:
    if not db_path.startswith("md:") and not os.path.exists(db_path):
        raise DatabaseMissing(f"database {db_path} does not exist; run `python -m ingest demo` or an ingest")
    con = connect_with_retry(db_path, read_only=True, timeout=lock_timeout)
    try:
        yield con
    finally:
        con.close()


def bind(sql: str, params: dict) -> dict:
    """Only the parameters the statement names (DuckDB rejects unused ones)."""
    return {name: params.get(name) for name in dict.fromkeys(_PARAM.findall(sql))}


def run_sql(con: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None) -> pd.DataFrame:
    return con.execute(sql, bind(sql, params or {})).df()


def run(db_path: str, name: str, filters: Filters | None = None, **extra) -> pd.DataFrame:
    """Run the named query with the shared filters plus query-specific parameters."""
    query = QUERIES[name]
    params = (filters or Filters()).params() | extra
    with read_connection(db_path) as con:
        return run_sql(con, query.sql, params)
