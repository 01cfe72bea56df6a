"""The store: the only code that writes to the DuckDB database.

It applies migrations, records ingest runs and rejected input, upserts events on the Graph ``id``
(re-loading the same data is a no-op), commits watermarks in the same transaction as the rows they
cover, and keeps job-status snapshots. A writer holds DuckDB's file lock only while a ``Store`` is
open: open it for a load, not for a network fetch.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb

from ingest import dbfile, schema, summaries
from ingest.dbfile import (  # noqa: F401 - re-exported: the store's errors and openers are imported from here too
    STORE_ROW_GROUP_SIZE,
    DatabaseLocked,
    NotAProvlensDatabase,
    StoreError,
    _claim_in_process,
    _is_local_file,
    _release_in_process,
    connect_with_retry,
    retry_while_locked,
    sql_literal,
    writer_waiting,
)
from ingest.event_sql import NORMALISE_EVENTS
from ingest.scim import derived as scim_derived

EVENT_COLUMN_NAMES = schema.names(schema.EVENT_COLUMNS)


class DirtyInput(Exception):
    """An all-or-nothing load found records it would reject; nothing was written."""


@dataclass
class Reject:
    """One piece of input that could not be loaded: where it was and why."""

    file: str
    position: str
    reason: str
    excerpt: str = ""


@dataclass
class LoadResult:
    read: int = 0  # records handed to the store, valid or not
    new: int = 0
    updated: int = 0
    invalid: int = 0  # rejected by the store (no id, no valid time)

    @property
    def unchanged(self) -> int:
        return self.read - self.invalid - self.new - self.updated


def _used(sql: str, params: dict) -> dict:
    """The named parameters a statement uses (DuckDB rejects extra ones)."""
    names = set(re.findall(r"\$([A-Za-z_]\w*)", sql))
    return {k: v for k, v in params.items() if k in names}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# Secrets in rejected input (an audit line's Authorization header, a "password" field) never reach the
# reject table: excerpts are scrubbed before they are cut (issue 8).
_AUTH_VALUE = re.compile(r"(?i)\b(bearer|basic)\s+[^\s\"',;}]+")
_SECRET_FIELD = re.compile(r"""(?ix)(["']?[\w.-]*(?:authori[sz]ation|token|secret|password|passwd|cookie|api[-_]?key)
                               [\w.-]*["']?\s*[:=]\s*)("(?:[^"\\]|\\.)*"?|'[^']*'?|[^\s,;&}]+)""")


def scrub(text: str) -> str:
    """``text`` with bearer/basic credentials and secret-named fields' values replaced by [redacted]."""
    text = _SECRET_FIELD.sub(lambda m: m.group(1) + '"[redacted]"', text)
    return _AUTH_VALUE.sub(lambda m: m.group(1) + " [redacted]", text)


def excerpt(text: str | bytes, limit: int = 200) -> str:
    """A short, single-line, printable excerpt of bad input for the reject table (secrets scrubbed)."""
    if isinstance(text, bytes):
        text = text[: limit * 8].decode("utf-8", errors="replace")
    text = scrub(text[: limit * 8])
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= limit else text[:limit] + "..."


@contextmanager
def _unordered(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Let DuckDB's threads each append the rows of one INSERT in their own order. The events have no
    meaningful insertion order (every query orders by time or key), and with order kept a big INSERT leaves
    a partial row group at every batch boundary, which checkpoints then merge (rewrite) again; unordered, each
    thread leaves one (B1, 4 loads of 50k events into ``STORE_ROW_GROUP_SIZE`` groups: 5.4-5.6 s ordered,
    4.4-4.6 s unordered; 6.2-6.7 s with DuckDB's default groups)."""
    con.execute("SET preserve_insertion_order = false")
    try:
        yield
    finally:
        try:
            con.execute("RESET preserve_insertion_order")
        except duckdb.TransactionException:  # the INSERT failed: reset after the ROLLBACK (_rollback)
            pass


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    """ROLLBACK, and the setting an aborted :func:`_unordered` INSERT could not reset. A transaction DuckDB already
    ended (a failed COMMIT: a full disk) needs none: the caller re-raises the error that ended it, not this one."""
    try:
        con.execute("ROLLBACK")
    except duckdb.TransactionException:
        pass
    con.execute("RESET preserve_insertion_order")


# KEEP_LATER_COPY (issue 22): the ORDER BY that ranks the copies of one event id (their content may differ) best
# first. The one with the later activityDateTime is kept; between equal times, the later position: within a batch,
# the later file of the load's ``order`` (a file not in it first), then the later record of the file (the last
# number of its position: line N, item[N], value[N]), then the greater position text; across the batches of a load
# and across loads, the later load (ingest files loads its files in the order given). So a copy dated earlier than
# the stored one never replaces it, and loading the same files again changes nothing (re-runs stay idempotent).
_POS_FILE = "coalesce(nullif(regexp_extract(pos, '^(.*)#[^#]*$', 1), ''), pos)"
KEEP_LATER_COPY = (f"activity_time DESC, coalesce(list_position($order::VARCHAR[], {_POS_FILE}), 0) DESC, "
                   r"try_cast(nullif(regexp_extract(regexp_extract(pos, '[^#]*$'), '(\d+)\D*$', 1), '') AS BIGINT) "
                   "DESC NULLS LAST, pos DESC, raw::VARCHAR DESC")

# DuckDB's memory during the correlation and the SCIM re-sort (B8: <= 4 GB peak RSS for the process).
CORRELATION_MEMORY_LIMIT = "3GB"

# Every ingest run this process started, in order: (database path, run id). ingest/metrics.py reports on the runs
# a command (or a round of `ingest run --every`) made.
RUNS_STARTED: list[tuple[str, int]] = []

class Store:
    """A read-write session on the database. Use as a context manager; close it promptly."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: str):
        self.con = con
        self.path = path
        self._open_runs: set[int] = set()  # started and not finished: marked failed if the session ends in an error
        self.version_before = 0  # set by migrate(): the schema version found, and the migrations applied
        self.migrations_applied: list[int] = []

    # ----------------------------------------------------------------- lifecycle
    @classmethod
    def open(cls, path: str, *, lock_timeout: float = 60.0, progress=None) -> Store:
        """Open ``path`` for writing (created if new), migrated and with its summaries current (``progress(table)``
        is told of each summary rebuilt)."""
        if _is_local_file(path):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        key = _claim_in_process(path)
        try:
            con = connect_with_retry(path, read_only=False, timeout=lock_timeout)
        except BaseException:
            _release_in_process(key)
            raise
        store = cls(con, path)
        store._key = key
        try:
            store.migrate(progress=progress)
        except Exception:
            store.close()
            raise
        return store

    def close(self) -> None:
        try:
            self.con.close()
        finally:
            _release_in_process(getattr(self, "_key", None))
            self._key = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc is not None and self._open_runs:
                self._fail_open_runs(exc)
        finally:
            self.close()

    def _fail_open_runs(self, exc: BaseException) -> None:
        """Record the runs this session started as failed, with the error that ended it (best effort: on a full disk
        this write may fail too, and the next run of the source marks them abandoned)."""
        message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:500]
        try:
            _rollback(self.con)
        except duckdb.Error:
            pass
        for run_id in sorted(self._open_runs):
            try:
                self.con.execute("UPDATE ingest_runs SET outcome = 'failed', message = ?, ended_at = ? "
                                 "WHERE run_id = ? AND outcome = 'running'", [message, utcnow(), run_id])
            except duckdb.Error:
                return

    def migrate(self, *, progress=None) -> int:
        """Bring the source tables to this provlens's schema and rebuild the summaries whose declaration changed;
        refuse foreign, newer and too old databases. ``progress(table)`` is told of each summary rebuilt."""
        con = self.con
        tables = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
            "AND table_catalog = current_database()").fetchall()}
        if tables and "schema_version" not in tables:
            raise NotAProvlensDatabase(
                f"{self.path} is a DuckDB database but not a provlens one (tables: "
                f"{', '.join(sorted(tables)[:5])}); it was left untouched")
        if "schema_version" not in tables:
            con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
                        "description VARCHAR, applied_at TIMESTAMPTZ NOT NULL)")
        applied = {r[0] for r in con.execute("SELECT version FROM schema_version").fetchall()}
        current = max(applied, default=0)
        self.version_before, self.migrations_applied = current, []
        if current > schema.LATEST_VERSION:
            raise StoreError(f"{self.path} has schema version {current}, newer than this provlens "
                             f"({schema.LATEST_VERSION}); upgrade provlens")
        if 0 < current < schema.OLDEST_UPGRADABLE:
            raise StoreError(f"{self.path} has schema version {current}, older than this provlens can upgrade "
                             f"({schema.OLDEST_UPGRADABLE}+); load its data into a new database")
        if current < schema.BASELINE:
            with self._transaction():
                if current == 0:
                    for sql in schema.SOURCE_TABLES:
                        con.execute(sql)
                    description = "source tables (baseline)"
                    for version, step, _ in schema.MIGRATIONS:  # the tables are created as they are now: included
                        con.execute("INSERT INTO schema_version VALUES (?, ?, ?)",
                                    [version, f"{step} (in a new store's baseline)", utcnow()])
                        applied.add(version)
                else:  # an older provlens's store: its summaries were migrated tables; they are rebuilt below
                    for sql in schema.UPGRADE_FROM_MIGRATIONS:
                        con.execute(sql)
                    for table in sorted(tables - set(schema.TABLES) - set(schema.BOOKKEEPING)):
                        con.execute(f"DROP TABLE {table}")
                    description = f"baseline from schema {current}: summaries dropped, rebuilt as a cache"
                con.execute("INSERT INTO schema_version VALUES (?, ?, ?)", [schema.BASELINE, description, utcnow()])
            self.migrations_applied.append(schema.BASELINE)
        for version, description, statements in schema.MIGRATIONS:
            if version in applied:
                continue
            with self._transaction():
                for sql in statements:
                    con.execute(sql)
                con.execute("INSERT INTO schema_version VALUES (?, ?, ?)", [version, description, utcnow()])
            self.migrations_applied.append(version)
        with self._memory_capped(CORRELATION_MEMORY_LIMIT):  # a rebuild's sorts spill instead of growing
            self.summaries_rebuilt = summaries.ensure(con, progress=progress)
        return schema.LATEST_VERSION

    # ----------------------------------------------------------------- runs and rejects
    def start_run(self, source: str, scope: str | None = None,
                  window_start: datetime | None = None, window_end: datetime | None = None) -> int:
        self.con.execute("UPDATE ingest_runs SET outcome = 'abandoned', "
                         "message = 'the process ended before the run finished' "
                         "WHERE outcome = 'running' AND source = ? AND scope IS NOT DISTINCT FROM ?",
                         [source, scope])
        run_id = self.con.execute("SELECT nextval('ingest_run_seq')").fetchone()[0]
        self.con.execute(
            "INSERT INTO ingest_runs (run_id, source, scope, started_at, window_start, window_end, outcome) "
            "VALUES (?, ?, ?, ?, ?, ?, 'running')", [run_id, source, scope, utcnow(), window_start, window_end])
        self._open_runs.add(run_id)
        RUNS_STARTED.append((self.path, run_id))
        return run_id

    def add_to_run(self, run_id: int, **counters: int) -> None:
        """Add to a run's counters (pages, records_read, records_new, ...)."""
        if not counters:
            return
        sets = ", ".join(f"{name} = coalesce({name}, 0) + ?" for name in counters)
        self.con.execute(f"UPDATE ingest_runs SET {sets} WHERE run_id = ?", [*counters.values(), run_id])

    def finish_run(self, run_id: int, outcome: str, message: str | None = None, **counters: int) -> None:
        self.add_to_run(run_id, **counters)
        self.con.execute("UPDATE ingest_runs SET outcome = ?, message = ?, ended_at = ? WHERE run_id = ?",
                         [outcome, message, utcnow(), run_id])
        self._open_runs.discard(run_id)

    def run_event_gaps(self, run_id: int) -> tuple[int, int, int, int]:
        """Of the events a run inserted or changed: how many, and how many have no status, no service principal
        id, no identity (neither a source nor a target id)."""
        return self.con.execute(
            "SELECT count(*), count(*) FILTER (WHERE status IS NULL), "
            "count(*) FILTER (WHERE service_principal_id IS NULL), "
            "count(*) FILTER (WHERE source_id IS NULL AND target_id IS NULL) "
            "FROM events WHERE ingest_run_id = ?", [run_id]).fetchone()

    def _commit_load(self, result: LoadResult, watermark: tuple[str, str, datetime] | None, run_id: int | None,
                     run_counters: dict[str, int] | None, *, then: Callable[[], None] | None = None) -> None:
        """The end of a load's transaction: the watermark, the caller's further writes (``then``) and the run's
        counters commit with the rows."""
        if watermark is not None:
            self._set_watermark(*watermark, run_id=run_id)
        if then is not None:
            then()
        if run_counters is not None and run_id is not None:
            self.add_to_run(run_id, **run_counters, records_read=result.read, records_new=result.new,
                            records_updated=result.updated, records_rejected=result.invalid)
        self.con.execute("COMMIT")

    def add_rejects(self, run_id: int | None, source: str, rejects: Iterable[Reject]) -> int:
        rows = [(run_id, source, r.file, r.position, r.reason, excerpt(r.excerpt), utcnow()) for r in rejects]
        if rows:
            self.con.executemany("INSERT INTO ingest_rejects VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        return len(rows)

    # ----------------------------------------------------------------- events
    def load_events(self, source_sql: str, params: list[Any] | dict | None = None, *, run_id: int | None,
                    watermark: tuple[str, str, datetime] | None = None, all_or_nothing: bool = False,
                    run_counters: dict[str, int] | None = None, likely_new: bool = False,
                    defer_derived: bool = False, then: Callable[[], None] | None = None,
                    order: list[str] | None = None) -> LoadResult:
        """Normalise and upsert the events of ``source_sql`` (a relation with columns ``raw`` JSON and
        ``pos`` VARCHAR) in one transaction; records without an ``id`` or a valid ``activityDateTime`` are
        rejected with their position (or, with ``all_or_nothing``, :class:`DirtyInput` is raised and
        nothing is written). ``watermark`` = (source, scope, value) commits with the rows, and so do the
        run's counters when ``run_counters`` is given (plus the records read/new/updated/rejected).
        ``likely_new``: the caller expects no known ids (a backfill past the store's data): try the one-pass
        insert on a non-empty store too (a known id rolls it back and the usual path runs).
        ``defer_derived``: a pure-insert batch leaves the derived refresh to a later load (see
        :meth:`refresh_pending_derived`); use it only when another load follows soon. ``then``: a store method's
        further writes that commit with the rows (a source's read positions, its rejects).
        ``order``: the load's files in the order they were given, for :data:`KEEP_LATER_COPY` (a record's file is
        its ``pos`` up to the last ``#``)."""
        con = self.con
        self._defer_derived = defer_derived
        self._order = list(order or [])
        con.execute("BEGIN TRANSACTION")
        try:
            first = self._load_into_empty(source_sql, params, run_id, likely_new=likely_new)
            if first is not None:  # a clean batch of new ids (fresh store or backfill): no key scan
                result = LoadResult(read=first, new=first)
            else:
                result = self._load_into_existing(source_sql, params, run_id, all_or_nothing)
            self._commit_load(result, watermark, run_id, run_counters, then=then)
        except Exception:
            _rollback(con)
            raise
        finally:
            con.execute("DROP TABLE IF EXISTS stage")
            con.execute("DROP TABLE IF EXISTS stage_keys")
        return result

    def _load_into_existing(self, source_sql: str, params: list[Any] | dict | None, run_id: int | None,
                            all_or_nothing: bool) -> LoadResult:
        """The usual path: a clean batch streams straight into events (no staging copy); a dirty one is
        materialised, and its bad records are reported with their positions."""
        clean, total = self._scan_keys(source_sql, params)
        if clean:
            new, updated = self._insert_and_update(NORMALISE_EVENTS.replace("{source}", source_sql), run_id,
                                                   params if isinstance(params, dict) else None)
            return LoadResult(read=total, new=new, updated=updated)
        if all_or_nothing:
            raise DirtyInput("some records lack an id or a valid activityDateTime, or an id repeats")
        self.con.execute("CREATE OR REPLACE TEMP TABLE stage AS " + NORMALISE_EVENTS.replace("{source}", source_sql),
                         params or [])
        return self._upsert_stage(run_id)

    def _load_into_empty(self, source_sql: str, params: list[Any] | dict | None, run_id: int | None, *,
                         likely_new: bool = False) -> int | None:
        """Into an empty ``events`` table every record is new: insert them all in one pass (no key scan, no
        anti-join). The table's constraints reject what the key scan would call dirty - a missing id or
        time (NOT NULL) or a repeated id (PRIMARY KEY, also an id the store already holds) - and an empty id
        is looked up after the insert. With ``likely_new`` this is tried on a non-empty table as well.
        Returns the number loaded, or None (not empty, positional parameters, or dirty: the transaction
        is then rolled back and begun again for the usual path)."""
        con = self.con
        if params and not isinstance(params, dict):
            return None
        empty = con.execute("SELECT 1 FROM events LIMIT 1").fetchone() is None
        if not (empty or likely_new):
            return None
        cols = self._LOADED_COLUMNS
        rows = NORMALISE_EVENTS.replace("{source}", source_sql)
        insert = (f"INSERT INTO events ({', '.join(cols)}, first_ingested_at, last_ingested_at, ingest_run_id) "
                  f"SELECT {', '.join(cols)}, $now, $now, $run FROM ({rows})")
        now = utcnow()
        try:
            with _unordered(con):
                loaded = con.execute(insert, _used(insert, {**(params or {}), "now": now, "run": run_id})
                                     ).fetchone()[0]
            empty_id = con.execute("SELECT 1 FROM events WHERE id = ''").fetchone()
        except duckdb.ConstraintException:
            empty_id = True
        if empty_id:
            _rollback(con)
            con.execute("BEGIN TRANSACTION")
            return None
        if loaded:
            if empty:
                self._derived_refresh(None, run_id=run_id)
            else:  # the rows this insert wrote (its own run and instant)
                con.execute("CREATE OR REPLACE TEMP TABLE stage_keys AS SELECT id FROM events "
                            "WHERE ingest_run_id IS NOT DISTINCT FROM $run AND last_ingested_at = $now",
                            {"run": run_id, "now": now})
                self._derived_refresh("stage_keys", run_id=run_id)
        return loaded

    def _scan_keys(self, source_sql: str, params: list[Any] | dict | None) -> tuple[bool, int]:
        """List the batch's ids in temp table ``stage_keys``; clean = every record has an id and a valid
        time and no id repeats (then the batch can be streamed). Positional parameters take the slow path."""
        if params and not isinstance(params, dict):
            return False, 0
        # one extraction call with both paths parses each document once (two calls parse it twice)
        sql = ("CREATE OR REPLACE TEMP TABLE stage_keys AS SELECT k[1] AS id, try_cast(k[2] AS TIMESTAMPTZ) AS t "
               "FROM (SELECT json_extract_string(raw, ['$.id', '$.activityDateTime']) AS k "
               f"FROM ({source_sql}))")
        self.con.execute(sql, _used(sql, params or {}))
        total, bad, distinct = self.con.execute(
            "SELECT count(*), count(*) FILTER (WHERE id IS NULL OR id = '' OR t IS NULL), count(DISTINCT id) "
            "FROM stage_keys").fetchone()
        clean = not bad and distinct == total
        if not clean:
            self.con.execute("DROP TABLE IF EXISTS stage_keys")
        return clean, total

    def _upsert_stage(self, run_id: int | None) -> LoadResult:
        con = self.con
        row = con.execute("SELECT source FROM ingest_runs WHERE run_id = ?", [run_id]).fetchone()
        reject_source = row[0] if row else "events"
        read = con.execute("SELECT count(*) FROM stage").fetchone()[0]
        bad = con.execute(
            "SELECT pos, CASE WHEN id IS NULL OR id = '' THEN 'event has no id' "
            "ELSE 'activityDateTime missing or not a date' END, raw::VARCHAR "
            "FROM stage WHERE id IS NULL OR id = '' OR activity_time IS NULL ORDER BY pos").fetchall()
        if bad:
            self.add_rejects(run_id, reject_source, [
                Reject(file=(pos or "").rsplit("#", 1)[0], position=(pos or "").rsplit("#", 1)[-1],
                       reason=reason, excerpt=raw) for pos, reason, raw in bad])
            con.execute("DELETE FROM stage WHERE id IS NULL OR id = '' OR activity_time IS NULL")
        # Several copies of one id in a batch: keep the later one (KEEP_LATER_COPY).
        distinct = con.execute("SELECT count(*) = count(DISTINCT id) FROM stage").fetchone()[0]
        rows = "stage"
        if not distinct:
            con.execute("CREATE OR REPLACE TEMP TABLE stage_dedup AS SELECT * FROM stage QUALIFY row_number() "
                        f"OVER (PARTITION BY id ORDER BY {KEEP_LATER_COPY}) = 1", {"order": self._order})
            rows = "stage_dedup"
        con.execute(f"CREATE OR REPLACE TEMP TABLE stage_keys AS SELECT id FROM {rows}")
        new, updated = self._insert_and_update(rows, run_id)
        con.execute("DROP TABLE IF EXISTS stage_dedup")
        return LoadResult(read=read, new=new, updated=updated, invalid=len(bad))

    _LOADED_COLUMNS = [c for c in EVENT_COLUMN_NAMES
                       if c not in ("first_ingested_at", "last_ingested_at", "ingest_run_id")]

    def _insert_and_update(self, rows_sql: str, run_id: int | None, params: dict | None = None) -> tuple[int, int]:
        """Insert the rows of ``rows_sql`` (normalised events, unique ids listed in temp table ``stage_keys``)
        whose id is new; update existing ones whose raw JSON changed. Returns (new, updated)."""
        con = self.con
        con.execute("CREATE OR REPLACE TEMP TABLE stage_known AS SELECT e.id, e.raw::VARCHAR AS raw_text, "
                    "e.activity_time FROM events e SEMI JOIN stage_keys k ON e.id = k.id")
        total, known = con.execute("SELECT (SELECT count(*) FROM stage_keys), count(*) FROM stage_known").fetchone()
        cols = self._LOADED_COLUMNS
        params = {**(params or {}), "now": utcnow(), "run": run_id}
        relation = rows_sql if rows_sql.isidentifier() else f"({rows_sql})"
        if total - known:
            insert = (f"INSERT INTO events ({', '.join(cols)}, first_ingested_at, last_ingested_at, ingest_run_id) "
                      f"SELECT {', '.join(cols)}, $now, $now, $run FROM {relation} s "
                      "ANTI JOIN stage_known k ON k.id = s.id")
            with _unordered(con):
                con.execute(insert, _used(insert, params))
        updated = 0
        if known:  # a copy of a stored event replaces it if it changed and is not dated earlier (KEEP_LATER_COPY)
            changed = (f"CREATE OR REPLACE TEMP TABLE stage_changed AS SELECT s.* FROM {relation} s "
                       "JOIN stage_known k ON k.id = s.id WHERE k.raw_text <> s.raw::VARCHAR "
                       "AND s.activity_time >= k.activity_time")
            con.execute(changed, _used(changed, params))
            updated = con.execute("SELECT count(*) FROM stage_changed").fetchone()[0]
            if updated:
                self._derived_note_old_keys("stage_changed")
                sets = ", ".join(f"{c} = s.{c}" for c in cols if c != "id")
                con.execute(f"UPDATE events SET {sets}, last_ingested_at = $now, ingest_run_id = $run "
                            "FROM stage_changed s WHERE events.id = s.id", {"now": params["now"], "run": run_id})
            # The summaries refresh the new and the changed events only: a known event re-sent unchanged (every
            # pull re-reads an overlap) is already in them, and an append-only summary would hold it twice.
            con.execute("DELETE FROM stage_keys WHERE id IN (SELECT id FROM stage_known) "
                        "AND id NOT IN (SELECT id FROM stage_changed)")
            con.execute("DROP TABLE IF EXISTS stage_changed")
        con.execute("DROP TABLE IF EXISTS stage_known")
        if total - known or updated:
            self._derived_refresh("stage_keys", run_id=run_id, updated=bool(updated))
        con.execute("DROP TABLE IF EXISTS stage_keys")
        return total - known, updated

    # ----------------------------------------------------------------- summaries (ingest/summaries)
    # The summaries (ingest/summaries) are refreshed for the keys a load touched, in the load's own transaction
    # (so they never disagree with the rows).
    def _derived_note_old_keys(self, changed_table: str) -> None:
        summaries.note_touched(self.con, f"SEMI JOIN {changed_table} c ON e.id = c.id")

    # A fast backfill commits several batches in a row; each refresh would recompute nearly every identity and
    # cycle again (B1). A pure-insert batch loaded with ``defer_derived`` only lists its run in
    # ``summary_pending_runs`` (same transaction); the next load without it - the pull's last commit, or any
    # later load or pull after a kill - refreshes those runs' events together with its own.
    _defer_derived = False

    def _pending_runs(self) -> list[int]:
        return [r for (r,) in self.con.execute("SELECT run_id FROM summary_pending_runs ORDER BY run_id").fetchall()]

    def _derived_refresh(self, keys_table: str | None, *, run_id: int | None = None, updated: bool = False) -> None:
        if self._defer_derived and not updated and run_id is not None:
            self.con.execute("INSERT INTO summary_pending_runs VALUES (?) ON CONFLICT DO NOTHING", [run_id])
            return
        if keys_table is None:  # a load into an empty store: everything
            summaries.refresh(self.con, changed=updated, everything=True)
            self.con.execute("DELETE FROM summary_pending_runs")
            return
        summaries.note_touched(self.con, f"SEMI JOIN {keys_table} k ON e.id = k.id")
        if self._pending_runs():
            summaries.note_touched(self.con, "SEMI JOIN summary_pending_runs p ON e.ingest_run_id = p.run_id")
            self.con.execute("DELETE FROM summary_pending_runs")
        summaries.refresh(self.con, changed=updated)

    def refresh_pending_derived(self) -> bool:
        """Refresh the summaries for the events of deferred loads (a pull killed before its last commit); returns
        whether there were any. One transaction."""
        if not self._pending_runs():
            return False
        with self._transaction():
            self.con.execute("CREATE OR REPLACE TEMP TABLE stage_keys (id VARCHAR)")
            self._defer_derived = False
            self._derived_refresh("stage_keys")
        self.con.execute("DROP TABLE IF EXISTS stage_keys")
        return True

    def load_clean_ndjson(self, path: str | os.PathLike, *, run_id: int | None) -> LoadResult:
        """Fast path: DuckDB streams an NDJSON file of events straight into ``events`` (no staging copy,
        bounded memory). All or nothing: raises :class:`DirtyInput` (or a DuckDB parse error) when any
        line is bad or an id repeats, so the caller can fall back to the line-by-line path that reports
        exact positions."""
        source = "SELECT json AS raw, $label AS pos FROM read_json_objects($path, format = 'newline_delimited')"
        return self.load_events(source, {"path": str(path), "label": str(path)}, run_id=run_id, all_or_nothing=True)

    # ----------------------------------------------------------------- watermarks and metadata
    def _set_watermark(self, source: str, scope: str, value: datetime, *, run_id: int | None) -> None:
        self.con.execute(
            "INSERT INTO watermarks VALUES (?, ?, ?, ?, ?) ON CONFLICT (source, scope) DO UPDATE SET "
            "value = greatest(watermarks.value, excluded.value), updated_at = excluded.updated_at, "
            "run_id = excluded.run_id", [source, scope, value, utcnow(), run_id])

    def set_watermark(self, source: str, scope: str, value: datetime, *, run_id: int | None = None) -> None:
        self._set_watermark(source, scope, value, run_id=run_id)

    def get_watermark(self, source: str, scope: str) -> datetime | None:
        row = self.con.execute("SELECT value FROM watermarks WHERE source = ? AND scope = ?",
                               [source, scope]).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.con.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                         [key, value])

    def get_meta(self, key: str) -> str | None:
        row = self.con.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    # ----------------------------------------------------------------- job status
    def load_job_snapshots(self, snapshots: Iterable[dict[str, Any]]) -> int:
        """Keep ``/synchronization/jobs`` snapshots: {"capturedAt", "servicePrincipalId", "job": {...}}."""
        rows = [(json.dumps(s["job"]), s["capturedAt"], s.get("servicePrincipalId")) for s in snapshots]
        if not rows:
            return 0
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.execute("CREATE OR REPLACE TEMP TABLE snap_raw (raw JSON, captured_at TIMESTAMPTZ, sp VARCHAR)")
            self.con.executemany("INSERT INTO snap_raw VALUES (?, ?, ?)", rows)
            before = self.con.execute("SELECT count(*) FROM sync_job_snapshots").fetchone()[0]
            self.con.execute("""
                INSERT INTO sync_job_snapshots
                SELECT raw->>'$.id', captured_at, sp, raw->>'$.templateId',
                       raw->>'$.schedule.interval', raw->>'$.schedule.state', raw->>'$.status.code',
                       raw->>'$.status.quarantine.reason',
                       try_cast(raw->>'$.status.quarantine.currentBegan' AS TIMESTAMPTZ),
                       try_cast(raw->>'$.status.quarantine.seriesBegan' AS TIMESTAMPTZ),
                       try_cast(raw->>'$.status.quarantine.nextAttempt' AS TIMESTAMPTZ),
                       raw->>'$.status.lastExecution.state',
                       try_cast(raw->>'$.status.lastExecution.timeBegan' AS TIMESTAMPTZ),
                       try_cast(raw->>'$.status.lastExecution.timeEnded' AS TIMESTAMPTZ),
                       try_cast(raw->>'$.status.lastSuccessfulExecution.timeEnded' AS TIMESTAMPTZ),
                       try_cast(raw->>'$.status.countSuccessiveCompleteFailures' AS INTEGER),
                       try_cast(raw->>'$.status.steadyStateLastAchievedTime' AS TIMESTAMPTZ),
                       raw
                FROM snap_raw WHERE raw->>'$.id' IS NOT NULL
                QUALIFY row_number() OVER (PARTITION BY raw->>'$.id', captured_at) = 1
                ON CONFLICT (job_id, captured_at) DO NOTHING""")
            after = self.con.execute("SELECT count(*) FROM sync_job_snapshots").fetchone()[0]
            self.con.execute("DROP TABLE snap_raw")
            self.con.execute("COMMIT")
        except Exception:
            self.con.execute("ROLLBACK")
            raise
        return after - before

    # ----------------------------------------------------------------- directory audit log (issue 24)
    def load_directory_audits(self, source_sql: str, params: dict | None = None, *, run_id: int | None,
                              watermark: tuple[str, str, datetime] | None = None,
                              run_counters: dict[str, int] | None = None) -> LoadResult:
        """Flatten and upsert the directory audit entries of ``source_sql`` (columns ``raw`` JSON, ``pos``) into
        ``directory_audits`` in one transaction, with the watermark and the run's counters. Entries without an id or
        a valid ``activityDateTime`` are rejected with their position; copies of one id in the batch keep the later
        one (:data:`KEEP_LATER_COPY`); a stored entry is replaced only when its raw JSON changed and the copy is not
        dated earlier, so re-loading anything (overlapping windows, re-runs) adds nothing."""
        from ingest.audit_sql import LOADED_COLUMNS, NORMALISE_AUDITS

        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute("CREATE OR REPLACE TEMP TABLE audit_stage AS "
                        + NORMALISE_AUDITS.replace("{source}", source_sql), params or {})
            read = con.execute("SELECT count(*) FROM audit_stage").fetchone()[0]
            bad = con.execute(
                "SELECT pos, CASE WHEN id IS NULL OR id = '' THEN 'directory audit entry has no id' "
                "ELSE 'activityDateTime missing or not a date' END, raw::VARCHAR FROM audit_stage "
                "WHERE id IS NULL OR id = '' OR activity_time IS NULL ORDER BY pos").fetchall()
            if bad:
                row = con.execute("SELECT source FROM ingest_runs WHERE run_id = ?", [run_id]).fetchone()
                self.add_rejects(run_id, row[0] if row else "graph-audit", [
                    Reject(file=(pos or "").rsplit("#", 1)[0], position=(pos or "").rsplit("#", 1)[-1],
                           reason=reason, excerpt=raw) for pos, reason, raw in bad])
            cols = ", ".join(LOADED_COLUMNS)
            con.execute(f"""CREATE OR REPLACE TEMP TABLE audit_rows AS SELECT {cols} FROM audit_stage
                            WHERE id IS NOT NULL AND id <> '' AND activity_time IS NOT NULL
                            QUALIFY row_number() OVER (PARTITION BY id ORDER BY {KEEP_LATER_COPY}) = 1""",
                        {"order": []})
            now = utcnow()
            new = con.execute(f"""INSERT INTO directory_audits ({cols}, first_ingested_at, last_ingested_at,
                                  ingest_run_id)
                                  SELECT {cols}, $now, $now, $run FROM audit_rows s
                                  ANTI JOIN directory_audits d ON d.id = s.id""",
                              {"now": now, "run": run_id}).fetchone()[0]
            sets = ", ".join(f"{c} = s.{c}" for c in LOADED_COLUMNS if c != "id")
            updated = con.execute(f"""UPDATE directory_audits SET {sets}, last_ingested_at = $now, ingest_run_id = $run
                                      FROM audit_rows s WHERE directory_audits.id = s.id
                                        AND directory_audits.raw::VARCHAR <> s.raw::VARCHAR
                                        AND s.activity_time >= directory_audits.activity_time
                                        AND directory_audits.last_ingested_at <> $now""",
                                  {"now": now, "run": run_id}).fetchone()[0]
            result = LoadResult(read=read, new=new, updated=updated, invalid=len(bad))
            self._commit_load(result, watermark, run_id, run_counters)
        except Exception:
            _rollback(con)
            raise
        finally:
            con.execute("DROP TABLE IF EXISTS audit_stage")
            con.execute("DROP TABLE IF EXISTS audit_rows")
        return result

    # ----------------------------------------------------------------- SCIM audit trail (issue 4; owner: SCIM ingest)
    # ----------------------------------------------------------------- preflight (issue 26)
    def record_preflight(self, run: dict[str, Any], findings: Iterable[dict[str, Any]]) -> int:
        """Keep one preflight run and its findings in one transaction; its run id. ``run``: service_principal_id,
        job_id, users, target_accounts, scim_url (no credentials), work_domains, message; each finding: the columns
        of ``preflight_findings`` but run_id (``evidence`` a dict, kept as JSON). The run's time is now (UTC)."""
        findings = list(findings)
        cols = [c for c in schema.names(schema.PREFLIGHT_FINDING_COLUMNS) if c != "run_id"]
        with self._transaction():
            run_id = self.con.execute("SELECT coalesce(max(run_id), 0) + 1 FROM preflight_runs").fetchone()[0]
            self.con.execute(
                "INSERT INTO preflight_runs (run_id, started_at, service_principal_id, job_id, users, target_accounts, "
                "scim_url, work_domains, findings, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [run_id, run.get("started_at") or utcnow(), run.get("service_principal_id"), run.get("job_id"),
                 run.get("users"), run.get("target_accounts"), run.get("scim_url"),
                 list(run.get("work_domains") or []), len(findings), run.get("message")])
            if findings:
                self.con.executemany(
                    f"INSERT INTO preflight_findings (run_id, {', '.join(cols)}) "
                    f"VALUES (?, {', '.join('?' for _ in cols)})",
                    [[run_id, *((json.dumps(f.get(c), sort_keys=True) if c == "evidence" else f.get(c)) for c in cols)]
                     for f in findings])
        return run_id

    # Requests are keyed on request_id (first copy wins: re-reading a line is a no-op). A batch's rows,
    # its rejects and the file's read position commit in ONE transaction, so a crash never loads a
    # line twice nor skips one.
    _SCIM_STAGE_COLUMNS = (
        "{request_id: 'VARCHAR', ts: 'VARCHAR', method: 'VARCHAR', path: 'VARCHAR', query: 'VARCHAR', "
        "status: 'INTEGER', duration_ms: 'DOUBLE', resource_type: 'VARCHAR', resource_id: 'VARCHAR', "
        "external_id: 'VARCHAR', user_name: 'VARCHAR', user_name_lower: 'VARCHAR', operation: 'VARCHAR', "
        "scim_type: 'VARCHAR', error_detail: 'VARCHAR', email_domains: 'VARCHAR[]', email_types: 'VARCHAR[]', "
        "active_after: 'BOOLEAN', client_ip: 'VARCHAR', user_agent: 'VARCHAR', credential_id: 'VARCHAR', "
        "tenant: 'VARCHAR', is_probe: 'BOOLEAN', source_file: 'VARCHAR', source_line: 'BIGINT', raw: 'JSON'}")

    def scim_file_states(self) -> list[dict[str, Any]]:
        cur = self.con.execute("SELECT path, device, inode, head_len, head_sha256, size, byte_offset, line_count, "
                               "csv_header, mtime_ns FROM scim_file_state")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    def load_scim_batch(self, run_id: int | None, staging_path: str | None, rejects: list[Reject],
                        file_state: dict[str, Any] | None) -> tuple[int, int]:
        """Insert the staged requests (NDJSON of typed records), the rejects and the file's new read
        position in one transaction; returns (new requests, duplicates of already loaded ones)."""
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            new = dup = 0
            if staging_path:
                con.execute("CREATE OR REPLACE TEMP TABLE scim_stage AS SELECT * FROM read_json($path, "
                            "format = 'newline_delimited', columns = " + self._SCIM_STAGE_COLUMNS + ")",
                            {"path": staging_path})
                staged = con.execute("SELECT count(*) FROM scim_stage").fetchone()[0]
                before = con.execute("SELECT count(*) FROM scim_requests").fetchone()[0]
                con.execute("""
                    INSERT INTO scim_requests
                    SELECT request_id, ts::TIMESTAMPTZ, method, path, query, status, duration_ms, resource_type,
                           resource_id, external_id, user_name, user_name_lower, operation, scim_type,
                           error_detail, email_domains, email_types, active_after, client_ip, user_agent,
                           credential_id, tenant, is_probe, source_file, source_line, raw, $now, $run
                    FROM scim_stage
                    QUALIFY row_number() OVER (PARTITION BY request_id ORDER BY source_file, source_line) = 1
                    ON CONFLICT (request_id) DO NOTHING""", {"now": (inserted_at := utcnow()), "run": run_id})
                new = con.execute("SELECT count(*) FROM scim_requests").fetchone()[0] - before
                if new:  # derived SCIM state (issue 7 B4; ingest/scim/derived.py)
                    scim_derived.add_scim_batch(con, inserted_at, run_id)
                dup = staged - new
                con.execute("DROP TABLE scim_stage")
            self.add_rejects(run_id, "scim", rejects)
            if file_state is not None:
                s = file_state
                con.execute(
                    "INSERT INTO scim_file_state (path, device, inode, head_len, head_sha256, size, byte_offset, "
                    "line_count, csv_header, updated_at, ingest_run_id, mtime_ns) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE "
                    "SET device = excluded.device, inode = excluded.inode, head_len = excluded.head_len, "
                    "head_sha256 = excluded.head_sha256, size = excluded.size, byte_offset = excluded.byte_offset, "
                    "line_count = excluded.line_count, csv_header = excluded.csv_header, "
                    "updated_at = excluded.updated_at, ingest_run_id = excluded.ingest_run_id, "
                    "mtime_ns = excluded.mtime_ns",
                    [s["path"], s["device"], s["inode"], s["head_len"], s["head_sha256"], s["size"],
                     s["byte_offset"], s["line_count"], s.get("csv_header"), utcnow(), run_id, s.get("mtime_ns")])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        return new, dup

    # ----------------------------------------------------------------- Azure Storage blobs (ingest/blobs/)
    # Each blob's read position commits in the same transaction as the events and rejects of the bytes it covers,
    # so a killed run never skips a line; a line read twice is harmless (events upsert on their id).
    _BLOB_STATE_FIELDS = ("blob", "etag", "creation_time", "size", "byte_offset", "line_count", "tail_len",
                          "tail_sha256")

    def blob_states(self, container_url: str) -> dict[str, dict[str, Any]]:
        """Where each blob of the container was read up to: {blob name: state}."""
        cur = self.con.execute(f"SELECT {', '.join(self._BLOB_STATE_FIELDS)} FROM blob_state "
                               "WHERE container_url = ?", [container_url])
        return {row[0]: dict(zip(self._BLOB_STATE_FIELDS, row)) for row in cur.fetchall()}

    def load_blob_batch(self, source_sql: str | None, params: dict | None, *, run_id: int, source: str,
                        container_url: str, states: list[dict[str, Any]], rejects: list[Reject],
                        run_counters: dict[str, int]) -> LoadResult:
        """Load one batch of a blob run in ONE transaction: the staged events (``source_sql``, or none), the
        rejects, the blobs' new read positions and the run's counters."""
        def positions_and_rejects() -> None:
            self.add_rejects(run_id, source, rejects)
            if states:
                now = utcnow()
                self.con.executemany(
                    "INSERT INTO blob_state VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (container_url, blob) "
                    "DO UPDATE SET etag = excluded.etag, creation_time = excluded.creation_time, size = excluded.size, "
                    "byte_offset = excluded.byte_offset, line_count = excluded.line_count, "
                    "tail_len = excluded.tail_len, tail_sha256 = excluded.tail_sha256, "
                    "updated_at = excluded.updated_at, ingest_run_id = excluded.ingest_run_id",
                    [[container_url, *(s[f] for f in self._BLOB_STATE_FIELDS), now, run_id] for s in states])

        if source_sql is not None:
            return self.load_events(source_sql, params, run_id=run_id, run_counters=run_counters,
                                    then=positions_and_rejects)
        with self._transaction():
            positions_and_rejects()
            self.add_to_run(run_id, **run_counters)
        return LoadResult()

    def replace_correlation(self, statements: list[tuple[str, dict]], *,
                            memory_limit: str = CORRELATION_MEMORY_LIMIT) -> None:
        """Recompute the ``correlation`` table: run the correlation's SQL (temp tables, then one INSERT
        into ``correlation``) in one transaction, replacing the previous result atomically. DuckDB's
        memory is capped at ``memory_limit`` meanwhile (B8: <= 4 GB peak RSS for the process): the joins
        spill to ``<db>.tmp`` instead of growing with the trail (11.6 GB at 5M events x 9M requests)."""
        con = self.con
        with self._memory_capped(memory_limit), self._transaction():
            con.execute("DELETE FROM correlation")
            for sql, params in statements:
                con.execute(sql, params)
            scim_derived.refresh_correlation(con)  # derived correlation state (issue 7 B4)

    def replace_source_rows(self, sources: dict[str, Any], meta: dict[str, str], *, progress=None) -> dict[str, int]:
        """Make the store a copy of someone else's source rows: each table of ``sources`` (table -> an Arrow
        reader, table or dataset with the table's columns, e.g. a lake tenant's rows, ingest/lake/cache.py) gets
        exactly those rows, ``meta`` is set, all in one transaction; then every summary is rebuilt from them
        (``progress(table)`` before each). Returns the rows per table."""
        con = self.con
        rows: dict[str, int] = {}
        with self._memory_capped(CORRELATION_MEMORY_LIMIT):
            with self._transaction():
                for table, source in sources.items():
                    columns = ", ".join(f'"{name}"' for name in schema.names(schema.TABLES[table][0]))
                    con.register("provlens_snapshot_source", source)
                    try:
                        con.execute(f"DELETE FROM {table}")
                        rows[table] = con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} "
                                                  "FROM provlens_snapshot_source").fetchone()[0]
                    finally:
                        con.unregister("provlens_snapshot_source")
                for key, value in meta.items():
                    self.set_meta(key, value)
                summaries.forget(con, [s.table for s in summaries.declared()])  # rebuilt below from these rows
            summaries.ensure(con, progress=progress)
        return rows

    def scim_resort_due(self) -> bool:
        """Whether the requests appended to ``derived_scim_requests_by_user`` since it was written exceed a quarter
        of it (then :meth:`resort_scim_by_user` is due)."""
        return scim_derived.resort_due(self.con)

    def resort_scim_by_user(self, *, memory_limit: str = CORRELATION_MEMORY_LIMIT) -> None:
        """Rewrite ``derived_scim_requests_by_user`` sorted. Memory capped like the correlation."""
        with self._memory_capped(memory_limit):
            scim_derived.resort(self.con)

    # ----------------------------------------------------------------- alerts (issue 24; ingest/alerts/state.py)
    def record_alerts(self, alerts: list, *, now: datetime, targets: tuple, renotify_hours: float):
        """Reconcile the stored alert episodes with an evaluation's active alerts and record the notifications due,
        in one transaction (:func:`ingest.alerts.state.reconcile`)."""
        from ingest.alerts import state

        with self._transaction():
            return state.reconcile(self.con, alerts, now=now, targets=targets, renotify_hours=renotify_hours)

    def pending_deliveries(self) -> list[dict[str, Any]]:
        from ingest.alerts import state

        return state.pending(self.con)

    def finish_delivery(self, delivery_id: int, *, ok: bool, attempts: int, error: str | None,
                        at: datetime) -> None:
        from ingest.alerts import state

        with self._transaction():
            state.finish(self.con, delivery_id, ok=ok, attempts=attempts, error=error, at=at)

    def give_up_delivery(self, delivery_id: int, reason: str, at: datetime) -> None:
        from ingest.alerts import state

        with self._transaction():
            state.give_up(self.con, delivery_id, reason, at)

    def _run_in_transaction(self, statements: list[str]) -> None:
        with self._transaction():
            for sql in statements:
                self.con.execute(sql)

    def _transaction(self):
        """BEGIN; COMMIT when the block ends, ROLLBACK (and re-raise) when it fails."""
        return dbfile.transaction(self.con)

    @contextmanager
    def _memory_capped(self, memory_limit: str) -> Iterator[None]:
        """DuckDB's memory capped at ``memory_limit`` meanwhile: big joins and sorts spill to ``<db>.tmp``."""
        previous_limit = self.con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        self.con.execute(f"SET memory_limit = '{memory_limit}'")
        try:
            yield
        finally:
            self.con.execute(f"SET memory_limit = '{previous_limit}'")
