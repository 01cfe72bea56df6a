"""Exports: a named dataset streamed by DuckDB straight to CSV or Parquet, with a manifest beside it.

CSV: UTF-8, header, RFC 4180 quoting, ISO-8601 UTC times, stable order, and text cells that a
spreadsheet would run as a formula (starting with ``= + - @``, tab, CR or LF) prefixed with ``'``
(OWASP); numeric columns are never touched, so numbers stay numbers. Parquet (zstd) keeps exact
values. DuckDB's ``COPY`` streams the rows; an export runs on a DuckDB of its own with a memory limit and a
spill directory beside the output, so the ORDER BY sort spills to disk and peak memory stays bounded
however many rows there are (:func:`export_connection`).
The file and its manifest are written under temporary names and renamed, so a failed export leaves
nothing behind. The dashboard's downloads use :func:`export_bytes` and :func:`csv_bytes_from_frame`:
one implementation of the escaping rules.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from ingest import __version__
from ingest.store import retry_while_locked
from queries.catalog import QUERIES
from queries.datasets import DATASETS, violations_sql_for
from queries.db import DatabaseMissing, bind, read_connection
from queries.filters import Filters
from queries.manifest import build_manifest, iso, manifest_path, sha256_file

FORMULA_PREFIX = r"^[=+\-@\t\r\n]"
# The same test as FORMULA_PREFIX on the first code point (= + - @ TAB CR LF), cheaper than the regex.
_FORMULA_CODES = "(61, 43, 45, 64, 9, 13, 10)"
# DuckDB's buffer memory for one export; the sort spills beyond it. The process (Python, pandas, DuckDB)
# adds ~150 MB. With 2 threads DuckDB's sort needs more than this limit, so the COPY runs on one thread.
EXPORT_MEMORY_LIMIT = "256MB"
# A sort's merge can need more than the limit (many spilled runs, each pinning a block): the export is
# then written again from the start with a larger limit instead of failing (bounded memory when it
# suffices, a finished file always).
EXPORT_MEMORY_RETRY_LIMITS = ("1GB", "4GB")
EXPORT_COPY_THREADS = 1
_EXPORT_ALIAS = "provlens_export"
FORMATS = ("csv", "parquet")


class ExportError(ValueError):
    """A request that cannot be exported (unknown dataset or format, bad filters), explained."""


@dataclass
class ExportResult:
    path: str
    rows: int
    escaped_cells: int
    manifest_path: str = ""
    manifest: dict = field(default_factory=dict)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _is_text(col_type: str) -> bool:
    return col_type in ("VARCHAR", "JSON") or col_type.startswith("VARCHAR(")


def formula_like(expr: str) -> str:
    """SQL: does the text start like a spreadsheet formula (``FORMULA_PREFIX``)?"""
    return f"ascii({expr}::VARCHAR) IN {_FORMULA_CODES}"


def neutralised(expr: str) -> str:
    """SQL for a text expression with formula-like values prefixed by ``'``."""
    return f"CASE WHEN {formula_like(expr)} THEN '''' || {expr}::VARCHAR ELSE {expr}::VARCHAR END"


def describe(con: duckdb.DuckDBPyConnection, sql: str, params: dict) -> list[tuple[str, str]]:
    return [(row[0], row[1]) for row in con.execute(f"DESCRIBE {sql}", bind(sql, params)).fetchall()]


def _wrapped_select(columns: list[tuple[str, str]], relation: str, fmt: str) -> tuple[str, list[str]]:
    """Select from ``relation`` so times print as ISO-8601 UTC and formula-like text is neutralised."""
    exprs, text_cols = [], []
    for name, col_type in columns:
        ident = _ident(name)
        if fmt == "csv" and col_type.startswith("TIMESTAMP"):
            exprs.append(f"strftime({ident}, '%Y-%m-%dT%H:%M:%S.%fZ') AS {ident}")
        elif fmt == "csv" and _is_text(col_type):
            text_cols.append(ident)
            exprs.append(f"{neutralised(ident)} AS {ident}")
        else:
            exprs.append(ident)
    return f"SELECT {', '.join(exprs)} FROM {relation}", text_cols


def _copy_options(fmt: str) -> str:
    return "FORMAT csv, HEADER true" if fmt == "csv" else "FORMAT parquet, COMPRESSION zstd"


def _quote_path(path: str) -> str:
    return path.replace("'", "''")


_TRAILING_ORDER_BY = re.compile(r"\s+ORDER\s+BY\s+[\w\s,.\"()]+$", re.IGNORECASE)


def unordered(sql: str) -> str:
    """``sql`` without its final top-level ``ORDER BY`` (for aggregates over it: DuckDB would sort first).
    An ORDER BY that closes a bracket (a window's or a subquery's) is not top-level, and one with a LIMIT
    or OFFSET decides which rows there are: then ``sql`` as is."""
    sql = sql.rstrip()
    match = _TRAILING_ORDER_BY.search(sql)
    tail = match.group() if match else ""
    if not match or tail.count("(") != tail.count(")") or re.search(r"\b(LIMIT|OFFSET)\b", tail, re.I):
        return sql
    return sql[:match.start()]


def dataset_sql(con: duckdb.DuckDBPyConnection, dataset: str) -> str:
    """The dataset's SQL for this database (violations adapts to whether the SCIM trail exists)."""
    return violations_sql_for(con) if dataset == "violations" else QUERIES[dataset].sql


def check_request(dataset: str, fmt: str, filters: Filters | None) -> None:
    if dataset not in DATASETS:
        raise ExportError(f"unknown dataset {dataset!r}; choose one of: {', '.join(DATASETS)}")
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r} (csv or parquet)")
    if filters and filters.since and filters.until and filters.until <= filters.since:
        raise ExportError("--until must be after --since")


def filters_for_manifest(filters: Filters | None, extra: dict) -> dict:
    f = filters or Filters()
    out = {"since": iso(f.since), "until": iso(f.until),
           "service_principal_ids": list(f.service_principal_ids) if f.service_principal_ids else None,
           "job_id": f.job_id}
    out.update({k: v for k, v in sorted(extra.items()) if v is not None})
    return out


def _last_successful_ingest(con: duckdb.DuckDBPyConnection) -> dict:
    rows = con.execute("SELECT source, max(ended_at) FILTER (WHERE outcome = 'success') "
                       "FROM ingest_runs GROUP BY source ORDER BY source").fetchall()
    return dict(rows)


@contextmanager
def export_connection(db_path: str, spill_dir: str, *, lock_timeout: float = 20.0,
                      memory_limit: str = EXPORT_MEMORY_LIMIT) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection for one export on a DuckDB of its own: memory-limited and spilling to
    ``spill_dir``, so sorting millions of rows does not hold them all in memory (the dashboard's shared
    in-memory host keeps its own settings)."""
    if db_path.startswith("md:"):  # MotherDuck runs the query remotely
        with read_connection(db_path, lock_timeout=lock_timeout) as con:
            yield con
        return
    if not os.path.exists(db_path):
        raise DatabaseMissing(f"database {db_path} does not exist; run `python -m ingest demo` or an ingest")
    con = duckdb.connect(":memory:", config={"memory_limit": memory_limit, "temp_directory": spill_dir})
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        quoted = _quote_path(db_path)
        retry_while_locked(db_path, lambda: con.execute(f"ATTACH '{quoted}' AS {_EXPORT_ALIAS} (READ_ONLY)"),
                           read_only=True, timeout=lock_timeout)
        con.execute(f"USE {_EXPORT_ALIAS}")
        yield con
    finally:
        con.close()  # detaches the file (releases its lock); the spill files go with the instance


def _summarise_while_copying(con: duckdb.DuckDBPyConnection, summary_sql: str, copy_sql: str, params: dict, *,
                             own_instance: bool) -> tuple:
    """(newest time, escaped cells, rows written): the manifest's summary query and the COPY. On an export's
    own instance the COPY runs on one thread (its sort then fits the memory limit) and the summary runs
    beside it on a second connection, so the two scans share the cores instead of taking turns."""
    if not own_instance:
        newest, escaped = con.execute(summary_sql, params).fetchone()
        return newest, escaped, con.execute(copy_sql, params).fetchone()[0]
    con.execute(f"SET threads = {EXPORT_COPY_THREADS}")

    def summary() -> tuple:
        cur = con.cursor()
        try:
            cur.execute("SET TimeZone = 'UTC'")
            cur.execute(f"USE {_EXPORT_ALIAS}")
            return cur.execute(summary_sql, params).fetchone()
        finally:
            cur.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(summary)
        rows = con.execute(copy_sql, params).fetchone()[0]
        newest, escaped = pending.result()
    return newest, escaped, rows


def export(db_path: str, dataset: str, out: str, *, filters: Filters | None = None, fmt: str = "csv",
           **extra) -> ExportResult:
    """Write ``dataset`` to ``out`` and ``out.manifest.json``; both appear only when both are complete.
    Runs within ``EXPORT_MEMORY_LIMIT``; if DuckDB runs out of it, again with each larger retry limit."""
    limits = (EXPORT_MEMORY_LIMIT, *EXPORT_MEMORY_RETRY_LIMITS)
    for i, limit in enumerate(limits):
        try:
            return _export_once(db_path, dataset, out, filters=filters, fmt=fmt, memory_limit=limit, **extra)
        except duckdb.OutOfMemoryException:
            if i == len(limits) - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _export_once(db_path: str, dataset: str, out: str, *, filters: Filters | None, fmt: str, memory_limit: str,
                 **extra) -> ExportResult:
    check_request(dataset, fmt, filters)
    params = (filters or Filters()).params() | extra
    out_dir = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(out_dir):
        raise OSError(f"cannot write {out}: directory {out_dir} does not exist")
    if os.path.isdir(out):
        raise OSError(f"cannot write {out}: it is a directory")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(out)}.", suffix=".part", dir=out_dir)
    except OSError as exc:
        raise OSError(f"cannot write in {out_dir}: {exc.strerror or exc}") from exc
    os.close(fd)
    tmp_manifest = tmp + ".manifest"
    try:
        with tempfile.TemporaryDirectory(prefix=".provlens-spill-", dir=out_dir) as spill_dir, \
                export_connection(db_path, spill_dir, memory_limit=memory_limit) as con:
            con.execute("SET TimeZone = 'UTC'")
            sql = dataset_sql(con, dataset)
            columns = describe(con, sql, params)
            select, text_cols = _wrapped_select(columns, f"({sql}) AS d", fmt)
            time_col = _ident(DATASETS[dataset].time_column)
            escaped_sql = " + ".join(
                f"count(*) FILTER (WHERE {formula_like(c)})" for c in text_cols
            ) if fmt == "csv" and text_cols else "0"
            newest, escaped, rows = _summarise_while_copying(
                con, f"SELECT max({time_col}), {escaped_sql} FROM ({unordered(sql)}) AS d",
                f"COPY ({select}) TO '{_quote_path(tmp)}' ({_copy_options(fmt)})", bind(sql, params),
                own_instance=not db_path.startswith("md:"))
            freshness = _last_successful_ingest(con)
        manifest = build_manifest(
            dataset=dataset, file_name=os.path.basename(out), fmt=fmt, filters=filters_for_manifest(filters, extra),
            rows=int(rows), sha256=sha256_file(tmp), escaped_cells=int(escaped or 0),
            newest_activity_time=newest, last_successful_ingest=freshness,
            columns=[{"name": n, "type": t} for n, t in columns], version=__version__)
        with open(tmp_manifest, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=2)
            fh.write("\n")
        os.replace(tmp, out)
        os.replace(tmp_manifest, manifest_path(out))
    except BaseException:
        for leftover in (tmp, tmp_manifest):
            if os.path.exists(leftover):
                os.unlink(leftover)
        raise
    return ExportResult(path=out, rows=int(rows), escaped_cells=int(escaped or 0),
                        manifest_path=manifest_path(out), manifest=manifest)


def export_bytes(db_path: str, dataset: str, filters: Filters | None = None, fmt: str = "csv",
                 **extra) -> tuple[bytes, dict]:
    """The export as bytes plus its manifest (the dashboard's Export page and download buttons)."""
    check_request(dataset, fmt, filters)
    with tempfile.TemporaryDirectory(prefix="provlens-export-") as tmp_dir:
        path = os.path.join(tmp_dir, f"{dataset}.{fmt}")
        result = export(db_path, dataset, path, filters=filters, fmt=fmt, **extra)
        with open(path, "rb") as fh:
            return fh.read(), result.manifest


def count_rows(db_path: str, dataset: str, filters: Filters | None = None, **extra) -> int:
    """How many rows ``export`` would write, without writing them (the Export page's preview)."""
    check_request(dataset, "csv", filters)
    params = (filters or Filters()).params() | extra
    with read_connection(db_path) as con:
        # Without the ORDER BY: DuckDB keeps a sort under count(*), and sorting 5M rows only to count
        # them took 2.3 s and ~500 MB of the dashboard's memory (B5); unordered, the count is instant.
        sql = unordered(dataset_sql(con, dataset))
        return int(con.execute(f"SELECT count(*) FROM ({sql}) AS d", bind(sql, params)).fetchone()[0])


def csv_bytes_from_frame(frame: pd.DataFrame) -> bytes:
    """A formula-safe CSV of a small DataFrame (an on-page table), with the export's exact rules."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("frame", frame)
        columns = [(row[0], row[1]) for row in con.execute("DESCRIBE SELECT * FROM frame").fetchall()]
        select, _ = _wrapped_select(columns, "frame", "csv")
        with tempfile.TemporaryDirectory(prefix="provlens-frame-") as tmp_dir:
            path = os.path.join(tmp_dir, "frame.csv")
            con.execute(f"COPY ({select}) TO '{_quote_path(path)}' ({_copy_options('csv')})")
            with open(path, "rb") as fh:
                return fh.read()
    finally:
        con.close()
