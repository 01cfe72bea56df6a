"""Read-only access for pages, exports and benchmarks: short-lived connections, bound parameters.

The database file is opened per call and closed at once, so the dashboard never holds DuckDB's lock
while an ingest wants to write; a briefly locked file is retried, never shown to a person.

Opening a new DuckDB instance costs ~15-20 ms here (it builds the catalog of built-in functions every
time), more than most page queries. So a process keeps one in-memory DuckDB "host" (it holds no file
and no lock) and ATTACHes the database file READ_ONLY under an alias; each call runs on its own cursor.

The attachment is kept between calls for a short while (``PROVLENS_READ_KEEP_S``, default 10 s after the
last call; 0 detaches after every call): a page's queries and a person's next click then find the file
attached and its blocks in DuckDB's buffer pool, instead of paying the ATTACH (~6 ms at 5M events) and
reading every block again (B4 in bench/BENCHMARKS.md: heavy queries take about half the time warm). The
shared lock it holds never keeps a writer out: a provlens writer that finds the file locked says so with
its ``<db>.write-wanted`` marker (ingest/store.py), and a watcher thread detaches as soon as no call is
running; a writer in this process lets go of the attachment before it opens the file
(``store.BEFORE_OWN_OPEN``); and a file changed in any other way (replaced, or written by another
tool) is noticed by its signature (inode, size, mtime of the file and its WAL) on the next call.
"""

from __future__ import annotations

import atexit
import itertools
import os
import re
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb
import pandas as pd

from ingest import store as _store
from ingest.store import StoreError, connect_with_retry, retry_while_locked, sql_literal
from queries.catalog import QUERIES
from queries.filters import Filters

_PARAM = re.compile(r"\$([A-Za-z_]\w*)")


class DatabaseMissing(StoreError):
    """The configured database file does not exist yet."""


_host: duckdb.DuckDBPyConnection | None = None
_host_lock = threading.Lock()
_aliases = itertools.count(1)


def _host_connection() -> duckdb.DuckDBPyConnection:
    """The process's in-memory DuckDB that attaches database files per call (created once)."""
    global _host
    with _host_lock:
        if _host is None:
            host = duckdb.connect(":memory:")
            host.execute("SET GLOBAL TimeZone = 'UTC'")
            # Bounded memory for a long-running reader (the dashboard): DuckDB's buffers and hash tables stay
            # under PROVLENS_READ_MEMORY (default 512MB) and spill to a temp folder beyond it, and freed
            # memory goes back to the system soon instead of staying with the process.
            host.execute("SET GLOBAL memory_limit = ?", [os.environ.get("PROVLENS_READ_MEMORY", "512MB")])
            host.execute("SET GLOBAL temp_directory = ?", [_spill_directory()])
            host.execute("SET GLOBAL allocator_flush_threshold = '32MB'")
            _host = host
        return _host


def _spill_directory() -> str:
    import tempfile

    return os.path.join(tempfile.gettempdir(), f"provlens-read-spill-{os.getuid()}")


def _attach(cur: duckdb.DuckDBPyConnection, db_path: str, alias: str, timeout: float) -> None:
    """ATTACH the file read-only, waiting while a writer holds its lock (giving way to a waiting writer)."""
    retry_while_locked(db_path, lambda: cur.execute(f"ATTACH {sql_literal(db_path)} AS {alias} (READ_ONLY)"),
                       read_only=True, timeout=timeout)


class StoreOutOfDate(StoreError):
    """The store was written by another provlens version: its schema or its summaries are not this code's."""


def check_current(cur: duckdb.DuckDBPyConnection, alias: str, db_path: str) -> None:
    """Refuse to read a store whose schema or summaries another provlens version wrote: a newer one says to
    upgrade provlens, an older one (or one whose summaries' definitions changed since they were built) to run
    ``python -m ingest migrate``, which rebuilds them. A file without provlens's schema is left to fail as it
    will (the caller explains foreign files)."""
    from ingest import schema, summaries

    tables = {t for (t,) in cur.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = ?",
                                        [alias]).fetchall()}
    if "schema_version" not in tables:
        return
    version = cur.execute(f"SELECT max(version) FROM {alias}.schema_version").fetchone()[0] or 0
    if version > schema.LATEST_VERSION:
        raise StoreOutOfDate(f"{db_path} was written by a newer provlens (schema {version}, this one reads "
                             f"{schema.LATEST_VERSION}): upgrade provlens")
    stale: list[str] = []
    if version == schema.LATEST_VERSION and "summary_state" in tables:
        built = dict(cur.execute(f"SELECT summary, fingerprint FROM {alias}.summary_state").fetchall())
        # A summary with no state is being rebuilt (its rows were emptied with it: it shows nothing, never a wrong
        # row); one with another fingerprint, or none at all, was written by other code.
        stale = [s.table for s in summaries.declared() if s.table not in tables
                 or built.get(s.table, s.fingerprint()) != s.fingerprint()]
    if version < schema.LATEST_VERSION or stale:
        what = f"schema {version}" if version < schema.LATEST_VERSION else f"summaries {', '.join(stale)}"
        raise StoreOutOfDate(f"{db_path} was written by an older provlens ({what}): run `python -m ingest "
                             f"migrate --db {db_path}` (or the next ingest) to upgrade it")


def file_signature(path: str) -> tuple:
    """Changes whenever the file or its WAL is written or replaced (inode, size, mtime of each)."""
    parts = []
    for p in (path, path + ".wal"):
        try:
            st = os.stat(p)
            parts.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except FileNotFoundError:
            parts.append(None)
    return tuple(parts)


KEEP_DEFAULT_S = 10.0  # when PROVLENS_READ_KEEP_S is not set (the test suite sets 0 for its own process)


def keep_seconds() -> float:
    """How long an attachment is kept after its last call (``PROVLENS_READ_KEEP_S``; 0 = not kept)."""
    try:
        return max(0.0, float(os.environ.get("PROVLENS_READ_KEEP_S", KEEP_DEFAULT_S)))
    except ValueError:
        return KEEP_DEFAULT_S


@dataclass
class _Attachment:
    """One ATTACH of a file: how many calls use it, since when it is idle, and whether it may be reused."""

    key: str  # the file's real path
    path: str  # as the caller named it (the writer marker sits beside it)
    alias: str
    signature: tuple
    in_flight: int = 1
    last_used: float = 0.0
    retired: bool = False  # no new call uses it; detached when the last one ends


_kept: dict[str, _Attachment] = {}  # real path -> the attachment new calls may reuse
_kept_lock = threading.Lock()  # guards _kept and every attachment's counters
_watcher: threading.Thread | None = None
_WATCH_S = 0.05  # how often the watcher looks for a waiting writer or an idle attachment


def _detach(att: _Attachment) -> None:
    cur = _host_connection().cursor()
    try:
        cur.execute(f"DETACH {att.alias}")  # releases the file and its lock
    except duckdb.Error:
        pass  # already gone with the host (interpreter exit)
    finally:
        cur.close()


def _retire_locked(att: _Attachment) -> None:
    """No new call may use ``att``; detach it now if no call runs on it. Caller holds ``_kept_lock``."""
    att.retired = True
    if _kept.get(att.key) is att:
        del _kept[att.key]
    if att.in_flight == 0:
        _detach(att)


def release(path: str | None = None) -> None:
    """Let go of the kept attachment of ``path`` (of every file if None); calls running finish first."""
    key = None if path is None else os.path.realpath(path)
    with _kept_lock:
        for att in [a for k, a in _kept.items() if key is None or k == key]:
            _retire_locked(att)


_store.BEFORE_OWN_OPEN.append(release)
atexit.register(release)


def _watch() -> None:
    """Detach kept attachments that are idle past the keep time, or that a waiting writer needs."""
    global _watcher
    while True:
        time.sleep(_WATCH_S)
        with _kept_lock:
            now = time.monotonic()
            keep = keep_seconds()
            for att in list(_kept.values()):
                if att.in_flight == 0 and (now - att.last_used > keep or _store.writer_waiting(att.path)):
                    _retire_locked(att)
            if not _kept:
                _watcher = None
                return


def _acquire(db_path: str, key: str, cur: duckdb.DuckDBPyConnection, timeout: float) -> _Attachment:
    """The kept attachment of the file if it is still good, else a new ATTACH (kept if keeping is on)."""
    global _watcher
    signature = file_signature(db_path)
    with _kept_lock:
        att = _kept.get(key)
        if att is not None:
            if att.signature == signature and not _store.writer_waiting(db_path):
                att.in_flight += 1
                return att
            _retire_locked(att)  # changed underneath, or a writer wants in: this call attaches afresh
    att = _Attachment(key, db_path, f"provlens_read_{next(_aliases)}", signature)
    _attach(cur, db_path, att.alias, timeout)
    try:
        check_current(cur, att.alias, db_path)
    except StoreError:
        _detach(att)
        raise
    with _kept_lock:
        if keep_seconds() > 0 and key not in _kept and file_signature(db_path) == signature:
            _kept[key] = att
            if _watcher is None:
                _watcher = threading.Thread(target=_watch, name="provlens-read-keeper", daemon=True)
                _watcher.start()
        else:
            att.retired = True  # used by this call only
    return att


def _finish(att: _Attachment) -> None:
    with _kept_lock:
        att.in_flight -= 1
        att.last_used = time.monotonic()
        if att.retired and att.in_flight == 0:
            _detach(att)


@contextmanager
def read_connection(db_path: str, *, lock_timeout: float = 20.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to ``db_path`` for one call (the attachment may be kept for the next one)."""
    if db_path.startswith("md:"):  # MotherDuck: a connection of its own, as the DSN says
        con = connect_with_retry(db_path, read_only=True, timeout=lock_timeout)
        try:
            yield con
        finally:
            con.close()
        return
    if not os.path.exists(db_path):
        raise DatabaseMissing(f"database {db_path} does not exist; run `python -m ingest demo` or an ingest")
    cur = _host_connection().cursor()
    try:
        att = _acquire(db_path, os.path.realpath(db_path), cur, lock_timeout)
        try:
            cur.execute(f"USE {att.alias}")
            cur.execute("SET enable_progress_bar = false")
            yield cur
        finally:
            try:
                cur.execute("USE memory")
            finally:
                _finish(att)
    finally:
        cur.close()


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
