"""Exports: a named dataset streamed by DuckDB straight to CSV or Parquet (constant memory).

CSV: UTF-8, header, RFC 4180 quoting, ISO-8601 UTC times, stable order, and text cells that a
spreadsheet would run as a formula prefixed with ``'`` (OWASP); numbers stay numbers. The file is
written under a temporary name and renamed, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

from queries.catalog import QUERIES
from queries.db import bind, read_connection
from queries.filters import Filters

FORMULA_PREFIX = r"^[=+\-@\t\r\n]"


@dataclass
class ExportResult:
    path: str
    rows: int
    escaped_cells: int


def _wrapped_select(con, sql: str, params: dict, fmt: str) -> tuple[str, list[str]]:
    """Wrap the dataset query so times print as ISO-8601 UTC and formula-like text is neutralised."""
    described = con.execute(f"DESCRIBE {sql}", bind(sql, params)).fetchall()
    exprs, text_cols = [], []
    for name, col_type, *_ in described:
        ident = '"' + name.replace('"', '""') + '"'
        if fmt == "csv" and col_type.startswith("TIMESTAMP"):
            exprs.append(f"strftime({ident}, '%Y-%m-%dT%H:%M:%S.%fZ') AS {ident}")
        elif fmt == "csv" and col_type in ("VARCHAR", "JSON"):
            text_cols.append(ident)
            exprs.append(f"CASE WHEN regexp_matches({ident}::VARCHAR, '{FORMULA_PREFIX}') "
                         f"THEN '''' || {ident}::VARCHAR ELSE {ident}::VARCHAR END AS {ident}")
        else:
            exprs.append(ident)
    return f"SELECT {', '.join(exprs)} FROM ({sql}) AS d", text_cols


def export(db_path: str, dataset: str, out: str, *, filters: Filters | None = None, fmt: str = "csv",
           **extra) -> ExportResult:
    if dataset not in QUERIES:
        raise KeyError(dataset)
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"unknown format {fmt!r} (csv or parquet)")
    sql = QUERIES[dataset].sql
    params = (filters or Filters()).params() | extra
    out_dir = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(out_dir):
        raise OSError(f"cannot write {out}: directory {out_dir} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(out)}.", suffix=".part", dir=out_dir)
    os.close(fd)
    try:
        with read_connection(db_path) as con:
            con.execute("SET TimeZone = 'UTC'")
            select, text_cols = _wrapped_select(con, sql, params, fmt)
            options = "FORMAT csv, HEADER true" if fmt == "csv" else "FORMAT parquet, COMPRESSION zstd"
            escaped = 0
            if text_cols:
                checks = " + ".join(f"count(*) FILTER (WHERE regexp_matches({c}::VARCHAR, '{FORMULA_PREFIX}'))"
                                    for c in text_cols)
                escaped = con.execute(f"SELECT {checks} FROM ({sql}) AS d", bind(sql, params)).fetchone()[0]
            rows = con.execute(f"COPY ({select}) TO '{_quote_path(tmp)}' ({options})",
                               bind(sql, params)).fetchone()[0]
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return ExportResult(path=out, rows=int(rows), escaped_cells=int(escaped))


def _quote_path(path: str) -> str:
    return path.replace("'", "''")
