"""Running named queries for pages, exports and benchmarks: bound parameters, results as DataFrames.

Connections come from :mod:`ingest.dbfile`, which owns every way the database file is opened (the kept read-only
attachment, the lock and the writer's marker); this module only runs SQL on them.
"""

from __future__ import annotations

import re
import warnings

import duckdb
import pandas as pd

from ingest.dbfile import (  # noqa: F401 - re-exported for pages, exports, benchmarks and tests
    DatabaseMissing,
    StoreOutOfDate,
    check_current,
    file_signature,
    keep_seconds,
    read_connection,
    release,
)
from queries.catalog import QUERIES
from queries.filters import Filters

_PARAM = re.compile(r"\$([A-Za-z_]\w*)")


def bind(sql: str, params: dict) -> dict:
    """Only the parameters the statement names (DuckDB rejects unused ones)."""
    return {name: params.get(name) for name in dict.fromkeys(_PARAM.findall(sql))}


# Result types whose Arrow -> pandas conversion gives exactly what DuckDB's own ``.df()`` gives (with the
# nullable dtypes below for integer/boolean columns that hold NULLs). Arrow keeps strings in buffers
# instead of making a Python object per cell: 2.5-4x faster on big results (138k failures: ~1.1 s -> 0.4 s).
_ARROW_SAFE = {"VARCHAR", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP", "DOUBLE", "FLOAT", "BOOLEAN", "BIGINT",
               "INTEGER", "SMALLINT", "TINYINT", "UBIGINT", "UINTEGER", "USMALLINT", "UTINYINT"}
_NULLABLE = {"BIGINT": pd.Int64Dtype(), "INTEGER": pd.Int32Dtype(), "SMALLINT": pd.Int16Dtype(),
             "TINYINT": pd.Int8Dtype(), "UBIGINT": pd.UInt64Dtype(), "UINTEGER": pd.UInt32Dtype(),
             "USMALLINT": pd.UInt16Dtype(), "UTINYINT": pd.UInt8Dtype(), "BOOLEAN": pd.BooleanDtype()}


# ``execute`` plans a statement once; a relation (``con.sql``) plans it to learn its types and again to run it,
# 2-6 ms more per page query (B4). DuckDB warns that Arrow from an ``execute`` result copies the rows once:
# cheaper than the second plan for every page result (17k violations: 18 vs 22 ms).
warnings.filterwarnings("ignore", message="Arrow output on a DB-API result makes an extra copy", category=UserWarning)


def run_sql(con: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None) -> pd.DataFrame:
    """The statement's result as a DataFrame (dtypes as DuckDB's ``.df()``; via Arrow where that is equal)."""
    result = con.execute(sql, bind(sql, params or {}))
    types = [str(column[1]) for column in result.description]
    if not all(t in _ARROW_SAFE for t in types):
        return result.df()
    table = result.to_arrow_table()
    frame = table.to_pandas()
    for i, duck_type in enumerate(types):
        column = table.column(i)
        if duck_type in _NULLABLE and column.null_count:
            dtype = _NULLABLE[duck_type]
            frame.isetitem(i, column.to_pandas(types_mapper=lambda _t, d=dtype: d))
        elif duck_type == "VARCHAR" and column.null_count == len(column):  # .df(): object, all None
            frame.isetitem(i, pd.Series([None] * len(column), dtype=object, index=frame.index))
    return frame


def run(db_path: str, name: str, filters: Filters | None = None, *, lock_timeout: float = 20.0,
        **extra) -> pd.DataFrame:
    """Run the named query with the shared filters plus query-specific parameters (``lock_timeout``: how long
    to wait for a writer that holds the file)."""
    query = QUERIES[name]
    params = (filters or Filters()).params() | extra
    with read_connection(db_path, lock_timeout=lock_timeout) as con:
        return run_sql(con, query.sql, params)
