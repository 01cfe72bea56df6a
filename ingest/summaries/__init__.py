"""Summaries: tables the store keeps beside the source tables so pages need not aggregate every row. Each is a
cache, declared once (:class:`Summary`): its table, one SELECT over the source tables, its refresh key, what it
depends on. The store never migrates one: :func:`ensure` rebuilds a summary from the source tables when its
declaration changed (its fingerprint in ``summary_state``) or it is missing, and drops the ones no longer declared;
:func:`refresh` brings the event summaries up to date for the events a load touched, in the load's transaction.

Declarations: :mod:`ingest.summaries.events` (Entra's events) and :mod:`ingest.summaries.scim` (the SCIM trail and
its correlation with Entra's log). The spec of every number they feed is :mod:`queries.reference`, held equal by
``tests/test_reference_oracle.py``. How to add one: ARCHITECTURE.md, "Summaries".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone

import duckdb

from ingest import dbfile

# The UTC hour of a TIMESTAMPTZ column, from the epoch (date_trunc on a TIMESTAMPTZ goes through ICU, ~8x slower).
HOUR_SQL = "make_timestamptz(epoch_us({col}) // 3600000000 * 3600000000)"

# What a load touched: one row per event inserted or changed, with its old and new keys (an update can move an
# event to another identity, cycle or hour). A summary's ``key`` names columns of this table (and of the summary),
# each computed from an events row ``{e}`` by this expression (also how a refresh finds the touched keys' events).
TOUCHED_COLUMNS = {
    "id": "{e}.id", "cycle_id": "{e}.cycle_id", "job_id": "{e}.job_id",
    "service_principal_id": "{e}.service_principal_id", "source_id": "{e}.source_id",
    "error_code": "{e}.error_code", "hour": HOUR_SQL.format(col="{e}.activity_time"),
}
TOUCHED = "summary_touched"


@dataclass(frozen=True)
class Summary:
    """One summary table.

    ``select`` computes its rows from the source tables (and the summaries in ``depends``). ``{scope}`` stands
    right after each ``FROM events`` (``FROM {scope_table}``): empty for a rebuild, a semi-join on the touched keys
    for a refresh.
    ``key``: the refresh deletes the rows of the touched keys and inserts them again from ``select``; no key:
    recomputed whole by every refresh. ``grows``: rows are only ever added (a refresh inserts what is new;
    changed events rebuild it). ``order``: a rebuild writes the rows in this order (zone maps find a key's rows);
    ``resort_at``: the table is rebuilt in order once the rows written since the last rebuild exceed this
    fraction of it. ``columns``: the CREATE TABLE body where types or compression matter. ``refreshed_by``:
    ``events`` (every event load, :func:`refresh`), ``scim`` or ``correlation`` (their own code, over the same
    ``select``)."""

    table: str
    select: str
    key: tuple[str, ...] = ()
    depends: tuple[str, ...] = ()
    order: str = ""
    columns: str = ""
    grows: bool = False
    resort_at: float = 0.0
    refreshed_by: str = "events"
    scope_table: str = "events"  # the relation whose rows ``{scope}`` restricts (a summary may read another one)
    rebuild_after: tuple[str, ...] = ()  # summaries whose change by a refresh makes this one be rebuilt whole

    def fingerprint(self) -> str:
        """What the table's rows depend on: its columns, its SELECT and how a refresh keeps it (not who refreshes it
        or when it is re-sorted)."""
        text = "\x00".join(map(repr, (self.table, self.columns, self.build_sql(), self.key, self.grows,
                                       self.scope_table, self.rebuild_after)))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def build_sql(self, **names: str) -> str:
        """The SELECT of every row (``names``: placeholders of the declaration, e.g. ``src``)."""
        sql = self.select.format_map(_Blank(names))
        return f"{sql}\nORDER BY {self.order}" if self.order else sql


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


def declared() -> list[Summary]:
    """Every summary, each after the ones it depends on."""
    from ingest.summaries import events, scim

    ordered: list[Summary] = []
    pending = [*events.SUMMARIES, *scim.SUMMARIES]
    while pending:
        done = {s.table for s in ordered}
        ready = [s for s in pending if set(s.depends) <= done]
        if not ready:
            raise ValueError(f"summaries with unknown or circular dependencies: {[s.table for s in pending]}")
        ordered += ready
        pending = [s for s in pending if s not in ready]
    return ordered


def by_table() -> dict[str, Summary]:
    return {s.table: s for s in declared()}


STATE_DDL = """CREATE TABLE IF NOT EXISTS summary_state (
    summary VARCHAR PRIMARY KEY, fingerprint VARCHAR NOT NULL, built_at TIMESTAMPTZ NOT NULL,
    rows_at_build BIGINT NOT NULL, rows_written BIGINT NOT NULL)"""


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT temporary "
                                      "AND database_name = current_database() AND schema_name = 'main'").fetchall()}


def build(con: duckdb.DuckDBPyConnection, summary: Summary) -> None:
    """(Re)create ``summary``'s table from the source tables and record its fingerprint."""
    if summary.columns:
        con.execute(f"CREATE OR REPLACE TABLE {summary.table} ({summary.columns})")
        con.execute(f"INSERT INTO {summary.table} {summary.build_sql()}")
    else:
        con.execute(f"CREATE OR REPLACE TABLE {summary.table} AS {summary.build_sql()}")
    rows = con.execute(f"SELECT count(*) FROM {summary.table}").fetchone()[0]
    con.execute("INSERT OR REPLACE INTO summary_state VALUES (?, ?, ?, ?, 0)",
                [summary.table, summary.fingerprint(), datetime.now(timezone.utc), rows])


def stale(con: duckdb.DuckDBPyConnection) -> list[Summary]:
    """The summaries whose table is missing or whose declaration changed since it was built (and those that
    depend on one of them)."""
    state = dict(con.execute("SELECT summary, fingerprint FROM summary_state").fetchall())
    tables = _tables(con)
    out: list[Summary] = []
    for s in declared():
        if s.table not in tables or state.get(s.table) != s.fingerprint() or set(s.depends) & {x.table for x in out}:
            out.append(s)
    return out


def dependents(table: str) -> list[Summary]:
    """The summaries that read ``table``, directly or through another summary."""
    out: list[Summary] = []
    for s in declared():
        if table in s.depends or set(s.depends) & {d.table for d in out}:
            out.append(s)
    return out


def forget(con: duckdb.DuckDBPyConnection, tables: list[str]) -> None:
    """Mark summaries stale (their state is dropped, their rows deleted: they were computed from a table being
    rewritten, so until the next :func:`ensure` rebuilds them they show nothing rather than something wrong)."""
    existing = _tables(con)
    for table in tables:
        con.execute("DELETE FROM summary_state WHERE summary = ?", [table])
        if table in existing:
            con.execute(f"DELETE FROM {table}")


def ensure(con: duckdb.DuckDBPyConnection, *, progress=None) -> list[str]:
    """Rebuild the stale summaries, each in a transaction of its own (a summary keyed on another's row numbers
    needs that one committed first; its own state is dropped in the same transaction, so a crash in between leaves
    it stale, never wrong), and drop the tables of summaries no longer declared. Returns the tables rebuilt.
    ``progress(table)`` is told before each rebuild."""
    if "summary_state" not in _tables(con):  # a store that is current is not written at all
        con.execute(STATE_DDL)
    gone = sorted(t for (t,) in con.execute("SELECT summary FROM summary_state").fetchall()
                  if t not in by_table())
    for table in gone:
        with dbfile.transaction(con):
            con.execute(f"DROP TABLE IF EXISTS {table}")
            forget(con, [table])
    rebuilt: list[str] = []
    for s in stale(con):
        if progress:
            progress(s.table)
        with dbfile.transaction(con):
            forget(con, [d.table for d in dependents(s.table)])
            build(con, s)
        rebuilt.append(s.table)
    return rebuilt


def _match(key: tuple[str, ...], *, table: str, events: bool) -> str:
    """``table``'s rows whose key equals the touched key ``k``'s (NULL equals NULL); ``events``: ``table`` is an
    events relation (the key computed from its columns), else a summary (the key is its columns)."""
    return " AND ".join(f"{TOUCHED_COLUMNS[c].format(e=table) if events else f'{table}.{c}'} IS NOT DISTINCT FROM k.{c}"
                        for c in key)


def note_touched(con: duckdb.DuckDBPyConnection, events_of: str) -> None:
    """Add the keys of the events ``events_of`` (a SEMI JOIN clause on ``events e``, or '' for every event) to
    the touched keys. Call before an UPDATE (old keys) and after the load (new keys)."""
    exprs = ", ".join(f"{expr.format(e='e')} AS {name}" for name, expr in TOUCHED_COLUMNS.items())
    con.execute(f"CREATE TEMP TABLE IF NOT EXISTS {TOUCHED} AS SELECT {exprs} FROM events e LIMIT 0")
    con.execute(f"INSERT INTO {TOUCHED} SELECT {exprs} FROM events e {events_of}")


def refresh(con: duckdb.DuckDBPyConnection, *, changed: bool, everything: bool = False) -> None:
    """Bring the event summaries up to date for the touched keys (``summary_touched``), inside the load's
    transaction. ``changed``: some events were updated (not only inserted); ``everything``: recompute all (a
    load into an empty store)."""
    grown: set[str] = set()  # summaries whose rows a grows-only refresh added to, or that were rewritten
    for s in declared():
        if s.refreshed_by != "events":
            continue
        if everything or set(s.rebuild_after) & grown:
            _rewrite(con, s)
            grown.add(s.table)
            continue
        written = _refresh_one(con, s, changed)
        if written and s.grows or (s.grows and changed):
            grown.add(s.table)
        if s.resort_at and written:
            rows_at_build, rows_written = con.execute(
                "UPDATE summary_state SET rows_written = rows_written + ? WHERE summary = ? "
                "RETURNING rows_at_build, rows_written", [written, s.table]).fetchone()
            if rows_written > s.resort_at * rows_at_build:
                _rewrite(con, s)
    con.execute(f"DROP TABLE IF EXISTS {TOUCHED}")


def _rewrite(con: duckdb.DuckDBPyConnection, s: Summary) -> None:
    """All of ``s`` again, in its order (the table and its column settings stay)."""
    con.execute(f"DELETE FROM {s.table}")
    con.execute(f"INSERT INTO {s.table} {s.build_sql()}")
    rows = con.execute(f"SELECT count(*) FROM {s.table}").fetchone()[0]
    con.execute("UPDATE summary_state SET rows_at_build = ?, rows_written = 0, built_at = ? WHERE summary = ?",
                [rows, datetime.now(timezone.utc), s.table])


def _refresh_one(con: duckdb.DuckDBPyConnection, s: Summary, changed: bool) -> int:
    """Refresh one summary for the touched keys; returns the rows it appended (the unsorted part grows by them)."""
    if not s.key or (s.grows and changed):
        _rewrite(con, s)
        return 0
    keys = f"(SELECT DISTINCT {', '.join(s.key)} FROM {TOUCHED})"
    scope = f"SEMI JOIN {keys} k ON {_match(s.key, table=s.scope_table, events=True)}"
    rows = s.select.format_map(_Blank(scope=scope))
    if s.grows:
        added, = con.execute(f"INSERT INTO {s.table} SELECT * FROM ({rows}) EXCEPT SELECT * FROM {s.table}"
                             ).fetchone()
        return added
    con.execute(f"DELETE FROM {s.table} d USING {keys} k WHERE {_match(s.key, table='d', events=False)}")
    inserted, = con.execute(f"INSERT INTO {s.table} {rows}").fetchone()
    return inserted
