"""Exports: a named dataset streamed by DuckDB straight to CSV or Parquet, with a manifest beside it.

CSV: UTF-8, header, RFC 4180 quoting, ISO-8601 UTC times, stable order, and text cells that a
spreadsheet would run as a formula (starting with ``= + - @``, tab, CR or LF) prefixed with ``'``
(OWASP); numeric columns are never touched, so numbers stay numbers. Parquet (zstd) keeps exact
values. DuckDB's ``COPY`` streams the rows; an export runs on a DuckDB of its own with a memory limit and a
spill directory beside the output, so the ORDER BY sort spills to disk and peak memory stays bounded
however many rows there are (:func:`ingest.dbfile.isolated_read_connection`). A big CSV export of a time-ordered dataset
(events, failures, skipped, scim-requests) is written in time-ordered chunks, each sorted on its own and appended in
order, so no global sort of every row is needed and memory is bounded by the largest chunk
(:func:`chunk_predicates`); the bytes are the same as one ``COPY`` of the whole ordered query.
The file and its manifest are written under temporary names and renamed, so a failed export leaves
nothing behind; the names carry the process id, so the next export in that folder removes what a killed
one left (:func:`remove_stale_leftovers`). The dashboard's downloads use :func:`export_bytes` and
:func:`csv_bytes_from_frame`: one implementation of the escaping rules.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import duckdb
import pandas as pd

from ingest import __version__, dbfile
from ingest.dbfile import ISOLATED_ALIAS as _EXPORT_ALIAS
from ingest.dbfile import isolated_read_connection
from queries.catalog import QUERIES
from queries.datasets import DATASETS
from queries.db import bind, read_connection
from queries.filters import Filters
from queries.manifest import build_manifest, iso, manifest_path, sha256_file

FORMULA_PREFIX = r"^[=+\-@\t\r\n]"
# The same test as FORMULA_PREFIX on the first code point (= + - @ TAB CR LF), cheaper than the regex.
_FORMULA_CODES = "(61, 43, 45, 64, 9, 13, 10)"
# DuckDB's buffer memory for one export; the sort spills beyond it. The process (Python, pandas, DuckDB)
# adds ~150 MB. With 2 threads DuckDB's sort of a whole big dataset needs more than this limit, so a
# single COPY runs on one thread (chunked exports sort a chunk at a time and use EXPORT_CHUNK_THREADS).
EXPORT_MEMORY_LIMIT = "256MB"
# A sort's merge can need more than the limit (many spilled runs, each pinning a block): the export is
# then written again from the start with a larger limit instead of failing (bounded memory when it
# suffices, a finished file always).
EXPORT_MEMORY_RETRY_LIMITS = ("1GB", "4GB")
EXPORT_COPY_THREADS = 1
# Chunked CSV exports: rows per chunk (whole minutes, or whole exact times within a busy minute, so a
# chunk can be larger when one time holds more), the datasets whose SQL is a plain filtered scan ordered
# by (time column, id), and the threads of a chunk's COPY. A chunk's query reads the row groups whose time
# range meets the chunk's (a store in arrival order: only its own; the session-3 bench stores interleaved
# all days in every row group, so each chunk decompressed every block). The sort of a chunk is most of its
# cost, and a 1M-row chunk's sort (~400 MB of rows) spilled out of the 256 MB limit: 5M events took 28-30 s
# in 1M-row chunks against 21 s in 250k-row chunks, and 32 vs 29 s even on the interleaved layout (issue 7
# B7, 2026-11-26). What broke at 5M was the final merge of one 5M-row sort.
EXPORT_CHUNK_ROWS = 250_000
CHUNKED_DATASETS = ("events", "failures", "skipped", "scim-requests")
EXPORT_CHUNK_THREADS = 1
SPILL_PREFIX = ".provlens-spill-"
# Leftovers without a process id in the name (written before ids were added) count as stale this long after
# their last change.
LEGACY_LEFTOVER_AGE_S = 3600.0
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
    """The dataset's SQL (every store has the SCIM tables, so one text serves all)."""
    return QUERIES[dataset].sql


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
    if f.identity_types:  # only when set: manifests without it stay as they were
        out["identity_types"] = list(f.identity_types)
    out.update({name: list(value) if isinstance(value, tuple) else value  # the event filters, when set
                for name, value in f.details().items()})
    out.update({k: v for k, v in sorted(extra.items()) if v is not None})
    return out


def _last_successful_ingest(con: duckdb.DuckDBPyConnection) -> dict:
    rows = con.execute("SELECT source, max(ended_at) FILTER (WHERE outcome = 'success') "
                       "FROM ingest_runs GROUP BY source ORDER BY source").fetchall()
    return dict(rows)


_ORDER_ITEM = re.compile(r"^[A-Za-z_]\w*$")


def order_keys(sql: str) -> list[str] | None:
    """The plain column names of ``sql``'s final top-level ``ORDER BY`` (None if there is none or an item is
    an expression, a direction or a NULLS clause: then the order cannot be re-applied outside the query)."""
    base = unordered(sql)
    if base == sql.rstrip():
        return None
    tail = re.sub(r"^\s*ORDER\s+BY\s+", "", sql.rstrip()[len(base):], flags=re.IGNORECASE)
    keys = [item.strip() for item in tail.split(",")]
    return keys if all(_ORDER_ITEM.match(k) for k in keys) else None


_MINUTE_US = 60_000_000


def chunk_predicates(con: duckdb.DuckDBPyConnection, base_sql: str, params: dict, time_col: str,
                     time_type: str, chunk_rows: int) -> list[str]:
    """WHERE conditions on ``time_col`` that split ``base_sql``'s rows into consecutive time ranges of about
    ``chunk_rows`` rows, in the order an ``ORDER BY time_col`` puts them: from one count per minute (a
    minute with more rows than a chunk is counted again per exact time), so equal times always share a
    chunk; NULL times come last (DuckDB's default NULLS LAST). One condition or none: nothing to split."""
    ident = _ident(time_col)
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc if "ZONE" in time_type else None)

    def at(microseconds: int) -> str:  # counted as integers (epoch_us): 10x faster than date_trunc on TIMESTAMPTZ
        return f"'{(epoch + timedelta(microseconds=microseconds)).isoformat()}'::{time_type}"

    buckets = []  # (first microsecond of the bucket, rows), in time order
    for minute, n in con.execute(f"SELECT epoch_us({ident}) // {_MINUTE_US} AS b, count(*) FROM ({base_sql}) AS u "
                                 "GROUP BY b ORDER BY b NULLS LAST", params).fetchall():
        start = None if minute is None else minute * _MINUTE_US
        if start is not None and n > chunk_rows:
            buckets += con.execute(
                f"SELECT epoch_us({ident}) AS b, count(*) FROM ({base_sql}) AS u WHERE {ident} >= {at(start)} "
                f"AND {ident} < {at(start + _MINUTE_US)} GROUP BY b ORDER BY b", params).fetchall()
        else:
            buckets.append((start, n))
    starts, in_chunk, nulls = [], 0, 0
    for start, n in buckets:
        if start is None:
            nulls = n
            continue
        if in_chunk and in_chunk + n > chunk_rows:
            starts.append(start)
            in_chunk = 0
        in_chunk += n
    predicates = [f"{ident} < {at(starts[0])}"] if starts else []
    predicates += [f"{ident} >= {at(lo)} AND {ident} < {at(hi)}" for lo, hi in zip(starts, starts[1:])]
    if starts:
        predicates.append(f"{ident} >= {at(starts[-1])}")
    elif buckets and nulls != sum(n for _, n in buckets):
        predicates.append(f"{ident} IS NOT NULL")
    if nulls:
        predicates.append(f"{ident} IS NULL")
    return predicates


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _newest_change(path: str) -> float:
    newest = os.lstat(path).st_mtime
    if os.path.isdir(path):
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                try:
                    newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
                except OSError:
                    pass
    return newest


_PART_NAME = re.compile(r"^\..+\.(\d+)-[a-z0-9_]{8}\.part(?:\.manifest)?$")  # mkstemp: 8 random characters


def remove_stale_leftovers(out_dir: str) -> list[str]:
    """Remove spill folders and partial files in ``out_dir`` that a killed export left behind: their name
    carries the writing process's id and that process is gone (legacy names without an id: unchanged for
    ``LEGACY_LEFTOVER_AGE_S``). Returns the paths removed."""
    removed = []
    try:
        entries = list(os.scandir(out_dir))
    except OSError:
        return removed
    for entry in entries:
        pid = None
        if entry.name.startswith(SPILL_PREFIX) and entry.is_dir(follow_symlinks=False):
            head = entry.name[len(SPILL_PREFIX):].split("-", 1)
            pid = int(head[0]) if len(head) == 2 and head[0].isdigit() else None
        elif (match := _PART_NAME.match(entry.name)) and entry.is_file(follow_symlinks=False):
            pid = int(match.group(1))
        else:
            continue
        try:
            stale = (not _pid_alive(pid)) if pid is not None else \
                time.time() - _newest_change(entry.path) > LEGACY_LEFTOVER_AGE_S
            if not stale or pid == os.getpid():
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(entry.path)
        except OSError:
            pass  # another export removed it first, or it is not ours to remove
    return removed


@contextmanager
def spill_directory(out_dir: str) -> Iterator[str]:
    """A spill folder for one export beside its output (where there is room for the file, there is room to
    spill), named with this process's id and removed afterwards; stale ones from killed exports go first."""
    remove_stale_leftovers(out_dir)
    path = tempfile.mkdtemp(prefix=f"{SPILL_PREFIX}{os.getpid()}-", dir=out_dir)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _summarise_while_copying(con: duckdb.DuckDBPyConnection, summary_sql: str, params: dict, write) -> tuple:
    """(newest time, escaped cells, rows written): the manifest's summary query and ``write()`` (the COPY or
    the chunked COPYs; returns the rows written). On the export's own instance the COPY runs on one thread
    (its sort then fits the memory limit) and the summary runs beside it on a second connection, so the two
    scans share the cores instead of taking turns."""
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
        rows = write()
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


def _chunking(con: duckdb.DuckDBPyConnection, dataset: str, sql: str, params: dict,
              columns: list[tuple[str, str]], fmt: str) -> list[str]:
    """The chunk conditions for a CSV export of a chunkable dataset (empty: one COPY of the whole query)."""
    time_column = DATASETS[dataset].time_column
    keys = order_keys(sql)
    types = dict(columns)
    if (fmt != "csv" or dataset not in CHUNKED_DATASETS or not keys or keys[0] != time_column
            or not all(k in types for k in keys)
            or types[time_column] not in ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE")):  # microseconds, as Python's
        return []
    try:
        predicates = chunk_predicates(con, unordered(sql), params, time_column, types[time_column],
                                      EXPORT_CHUNK_ROWS)
    except (OverflowError, ValueError):  # a time Python cannot hold (DuckDB's infinity): one COPY then
        return []
    return predicates if len(predicates) > 1 else []


def _write_chunks(con: duckdb.DuckDBPyConnection, sql: str, columns: list[tuple[str, str]], predicates: list[str],
                  params: dict, out: str, spill_dir: str) -> tuple[int, str]:
    """Write ``sql``'s rows to the CSV ``out`` one time range at a time, each range sorted by the query's own
    ORDER BY keys and appended in order (the header once): the same bytes as one COPY of ``sql``. Returns
    (rows, SHA-256 of the file): a second thread hashes and appends chunk i while DuckDB writes chunk i + 1,
    so the manifest's hash costs no pass of its own at the end."""
    order = ", ".join(_ident(k) for k in order_keys(sql))
    base = unordered(sql)
    con.execute(f"SET threads = {EXPORT_CHUNK_THREADS}")  # out of memory: the export's own retry, bigger limit
    rows, digest = 0, hashlib.sha256()
    with ThreadPoolExecutor(max_workers=1) as appender:  # one worker: the chunks are hashed/appended in order
        pending = []
        out_fh = None
        try:
            for i, predicate in enumerate(predicates):
                chunk = f"(SELECT * FROM ({base}) AS u WHERE {predicate} ORDER BY {order}) AS d"
                select, _ = _wrapped_select(columns, chunk, "csv")
                part = out if i == 0 else os.path.join(spill_dir, f"chunk-{i}.csv")  # the first: the header
                copy = f"COPY ({select}) TO '{_quote_path(part)}' (FORMAT csv, HEADER {i == 0})"
                rows += con.execute(copy, params).fetchone()[0]
                if i == 0:
                    pending.append(appender.submit(_hash_and_append, out, digest, None))
                else:
                    out_fh = out_fh or open(out, "ab")  # noqa: SIM115 - closed below
                    pending.append(appender.submit(_hash_and_append, part, digest, out_fh))
            for task in pending:
                task.result()
        finally:
            for task in pending:
                task.cancel()
            appender.shutdown(wait=True)
            if out_fh:
                out_fh.close()
    return rows, digest.hexdigest()


def _hash_and_append(path: str, digest, out_fh) -> None:
    """Add the file's bytes to ``digest``; with ``out_fh``, also append them there and remove the file."""
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)  # releases the GIL: runs beside DuckDB's next COPY
            if out_fh is not None:
                out_fh.write(block)
    if out_fh is not None:
        os.unlink(path)


def temporary_beside(out: str) -> tuple[str, str]:
    """(``out``'s folder, a new empty temporary file there) for an export to ``out``; OSError with one line saying
    why when ``out`` cannot be written (no such folder, a folder itself, no room or no right to write)."""
    out_dir = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(out_dir):
        raise OSError(f"cannot write {out}: directory {out_dir} does not exist")
    if os.path.isdir(out):
        raise OSError(f"cannot write {out}: it is a directory")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(out)}.{os.getpid()}-", suffix=".part", dir=out_dir)
    except OSError as exc:
        raise OSError(f"cannot write in {out_dir}: {exc.strerror or exc}") from exc
    os.close(fd)
    return out_dir, tmp


def _export_once(db_path: str, dataset: str, out: str, *, filters: Filters | None, fmt: str, memory_limit: str,
                 **extra) -> ExportResult:
    check_request(dataset, fmt, filters)
    params = (filters or Filters()).params() | extra
    # stale leftovers of killed exports go when the spill folder is made (spill_directory)
    out_dir, tmp = temporary_beside(out)
    try:
        with spill_directory(out_dir) as spill_dir, \
                isolated_read_connection(db_path, spill_dir, memory_limit=memory_limit) as con:
            con.execute("SET TimeZone = 'UTC'")
            sql = dataset_sql(con, dataset)
            columns = describe(con, sql, params)
            select, text_cols = _wrapped_select(columns, f"({sql}) AS d", fmt)
            time_col = (_ident(DATASETS[dataset].time_column) if DATASETS[dataset].time_column
                        else "NULL::TIMESTAMPTZ")  # a dataset no column dates (preflight): no newest time
            escaped_sql = " + ".join(
                f"count(*) FILTER (WHERE {formula_like(c)})" for c in text_cols
            ) if fmt == "csv" and text_cols else "0"
            bound = bind(sql, params)
            predicates = _chunking(con, dataset, sql, bound, columns, fmt)

            hashed = {}  # a chunked export hashes the file while writing it

            def write() -> int:
                if not predicates:
                    return con.execute(f"COPY ({select}) TO '{_quote_path(tmp)}' ({_copy_options(fmt)})",
                                       bound).fetchone()[0]
                written, hashed["sha256"] = _write_chunks(con, sql, columns, predicates, bound, tmp, spill_dir)
                return written

            newest, escaped, rows = _summarise_while_copying(
                con, f"SELECT max({time_col}), {escaped_sql} FROM ({unordered(sql)}) AS d", bound, write)
            freshness = _last_successful_ingest(con)
        manifest = build_manifest(
            dataset=dataset, file_name=os.path.basename(out), fmt=fmt, filters=filters_for_manifest(filters, extra),
            rows=int(rows), sha256=hashed.get("sha256") or sha256_file(tmp), escaped_cells=int(escaped or 0),
            newest_activity_time=newest, last_successful_ingest=freshness,
            columns=[{"name": n, "type": t} for n, t in columns], version=__version__)
        publish(tmp, out, manifest)
    except BaseException:
        discard(tmp)
        raise
    return ExportResult(path=out, rows=int(rows), escaped_cells=int(escaped or 0),
                        manifest_path=manifest_path(out), manifest=manifest)


def publish(tmp: str, out: str, manifest: dict) -> None:
    """Write ``manifest`` beside the finished temporary file ``tmp``, then move both into place (``out`` and its
    manifest): a reader never sees a file without its manifest."""
    tmp_manifest = tmp + ".manifest"
    with open(tmp_manifest, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, out)
    os.replace(tmp_manifest, manifest_path(out))


def discard(tmp: str) -> None:
    """Remove a failed export's temporary file and manifest, where they exist."""
    for leftover in (tmp, tmp + ".manifest"):
        if os.path.exists(leftover):
            os.unlink(leftover)


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
    con = dbfile.connect()
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
