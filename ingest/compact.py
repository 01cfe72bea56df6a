"""``python -m ingest compact``: write a compacted copy of a store to a new file.

DuckDB keeps the blocks a big change frees (a migration that rewrites a table, a large delete) inside the
file for reuse, so a store can stay much larger than its data: a 5M-event store upgraded through
migration 9 stays at 13 GB where a fresh one holds the same rows in 1.6 GB. ``COPY FROM DATABASE`` into a
new file writes only the live rows, with the same tables, constraints, indexes, sequences and column
compression.

The copy never replaces the live store: the source is opened read-only (the dashboard keeps reading it;
a writer waits until the copy is done), the copy is written under a temporary name, checked table by
table (same rows), and only then renamed to ``--out``. Swapping it in is the operator's step, with the
ingest job stopped (see the README), so nothing a concurrent writer commits can be lost by a rename.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass

import duckdb

from ingest import dbfile
from ingest.store import STORE_ROW_GROUP_SIZE, StoreError, retry_while_locked, sql_literal

# The copy streams table by table; without a limit DuckDB used 3.2 GB for a 1M-event store and 9.5 GB at 5M
# (index builds and insert buffers), with 1 GB it spilled and took the same time (83 vs 88 s at 1M).
COMPACT_MEMORY_LIMIT = "1GB"


class CompactError(StoreError):
    """The copy could not be made or did not match its source (nothing was written at ``out``)."""


class CompactUsageError(CompactError):
    """The command line asks for something compaction will not do (overwrite a file, copy onto itself)."""


@dataclass
class CompactResult:
    tables: int
    rows: int
    bytes_before: int
    bytes_after: int
    seconds: float


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _tables(con: duckdb.DuckDBPyConnection, database: str) -> list[tuple[str, str]]:
    return con.execute("SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ? "
                       "ORDER BY schema_name, table_name", [database]).fetchall()


def _row_counts(con: duckdb.DuckDBPyConnection, database: str) -> dict[tuple[str, str], int]:
    return {(schema, table): con.execute(
                f"SELECT count(*) FROM {_quote(database)}.{_quote(schema)}.{_quote(table)}").fetchone()[0]
            for schema, table in _tables(con, database)}


def compact_copy(src: str, out: str, *, lock_timeout: float = 60.0) -> CompactResult:
    """Copy the store ``src`` into the new file ``out``."""
    if not os.path.exists(src):
        raise CompactUsageError(f"database {src} does not exist")
    if os.path.abspath(src) == os.path.abspath(out):
        raise CompactUsageError("--out must be a new file, not the database itself")
    if os.path.exists(out) or os.path.exists(out + ".wal"):
        raise CompactUsageError(f"{out} already exists: choose a new file for the compacted copy")
    tmp = f"{out}.compacting"  # a killed compaction's leftovers are removed by the next one (same --out)
    spill = tmp + ".spill"
    started = time.monotonic()
    con = dbfile.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        con.execute(f"SET memory_limit = '{COMPACT_MEMORY_LIMIT}'")
        con.execute(f"SET temp_directory = {sql_literal(spill)}")
        retry_while_locked(src, lambda: con.execute(f"ATTACH {sql_literal(src)} AS source (READ_ONLY)"),
                           read_only=True, timeout=lock_timeout)
        _schema_version(con)  # a provlens store (of any version: the copy keeps it; migrate before or after)
        _remove(tmp)
        con.execute(f"ATTACH {sql_literal(tmp)} AS compacted (ROW_GROUP_SIZE {STORE_ROW_GROUP_SIZE})")
        con.execute("COPY FROM DATABASE source TO compacted")
        before, after = _row_counts(con, "source"), _row_counts(con, "compacted")
        if before != after:
            differing = sorted(f"{s}.{t}" for s, t in before.keys() | after.keys()
                               if before.get((s, t)) != after.get((s, t)))
            raise CompactError(f"the copy does not match its source in {', '.join(differing)}; nothing written")
        con.execute("DETACH compacted")  # checkpoints: the copy is one file, no WAL
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except duckdb.Error as exc:
        raise CompactError(f"could not compact {src}: {exc}") from exc
    finally:
        con.close()
        _remove(tmp)
    return CompactResult(tables=len(before), rows=sum(before.values()), bytes_before=_size(src),
                         bytes_after=_size(out), seconds=time.monotonic() - started)


def _schema_version(con: duckdb.DuckDBPyConnection) -> int | None:
    try:
        return con.execute("SELECT max(version) FROM source.main.schema_version").fetchone()[0]
    except duckdb.CatalogException:
        raise CompactError("not a provlens database (it has no schema_version table)") from None


def _remove(tmp: str) -> None:
    for leftover in (tmp, tmp + ".wal"):
        if os.path.exists(leftover):
            os.remove(leftover)
    shutil.rmtree(tmp + ".spill", ignore_errors=True)


def _size(path: str) -> int:
    return sum(os.path.getsize(p) for p in (path, path + ".wal") if os.path.exists(p))
