"""Copy a store's source tables into the lake, incrementally: per table, one Delta commit that replaces the tenant's
partitions for the days that changed since the last copy (``mode="overwrite"`` with a
``lake_tenant = .. AND lake_day IN (..)`` predicate), then one commit to the copy state.

**What changed.** The lake keeps a small Delta table of its own, ``<lake>/_provlens_copies`` (partitioned by
``lake_tenant`` and ``table_name``), holding per tenant, table and UTC day the *fingerprint* of the store's rows
that the last copy wrote: ``count(*)``, ``bit_xor(hash(t))`` and ``sum(hash(t))`` over the whole row, computed by
DuckDB in one grouped scan. A copy compares the store's fingerprints now with the recorded ones and rewrites only
the days that differ (new, changed or deleted rows); a day the store no longer has is emptied in the lake. A re-run
over an unchanged store makes no data commit at all. The fingerprint depends on DuckDB's ``hash``: a DuckDB upgrade
that changes it makes the next copy rewrite every day once (correct, only slower). ``full=True`` ignores the state and
replaces all of the tenant's partitions. A row whose dating time is NULL (a preflight finding whose run is gone) has
no day and is not copied.

**Order and crashes.** The data commit comes first and the state commit after it. A writer killed before its data
commit leaves no commit at all (Delta commits are atomic: files it wrote are never referenced, ``vacuum`` removes
them); killed between the two, the lake already holds the new rows and the state still names the old fingerprint,
so the next run rewrites those days again, to the same content.

**Why a partition rewrite, not a merge on id.** After the commit a partition holds exactly what the store holds for
that tenant and day: a re-run, an overlapping window, a row the store deleted or corrected, or a row whose day moved,
never leaves a duplicate or a stale row, and no table needs a unique key (``ingest_rejects`` has none,
``correlation`` is keyed by a pair with NULLs). A merge would have to read and join the lake's side for every day
it touches, would not remove rows the store dropped, and costs a join per row where a rewrite only writes; a day's
partition of one tenant is small (a 200k-user tenant logs a few hundred thousand events a day), so rewriting a
changed day whole is cheap.

**New columns.** A store migration that adds a column to a source table (``ingest/schema.py``) adds it to the lake
table at the next copy (``schema_mode="merge"``); the rows' fingerprints change with it, so every day is rewritten
once and older rows get the column too.

**Concurrency.** Writers of different tenants touch disjoint partitions: delta-rs rebases such commits on each
other by itself. Two writers of the *same* tenant and day conflict (``CommitFailedError``); the losing commit is
retried (tenacity) by re-reading the store, so the last one wins with the store's content. Rows stream from DuckDB
to delta-rs in Arrow batches (``RecordBatchReader``): a table is never held in memory whole.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

import duckdb
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from ingest.lake.layout import (
    DAY,
    LAKE_TABLES,
    PARTITION_COLUMNS,
    TENANT,
    arrow_schema,
    check_tenant,
    storage_options,
    table_uri,
)

BATCH_ROWS = 100_000
WRITER = WriterProperties(compression="ZSTD")
STATE_TABLE = "_provlens_copies"  # the copy state: a Delta table beside the data tables (not a store table)
STATE_SCHEMA = pa.schema([
    pa.field(TENANT, pa.string()), pa.field("table_name", pa.string()), pa.field(DAY, pa.date32()),
    pa.field("rows", pa.int64()), pa.field("fingerprint", pa.string()),
    pa.field("copied_at", pa.timestamp("us", tz="UTC")),
])
STATE_PARTITIONS = [TENANT, "table_name"]
COMMIT_ATTEMPTS = 8

# (table, rows just written, rows this copy will write in all): called after each batch handed to delta-rs.
Progress = Callable[[str, int, int], None]

_retry_conflicts = retry(retry=retry_if_exception_type(CommitFailedError), stop=stop_after_attempt(COMMIT_ATTEMPTS),
                         wait=wait_random_exponential(multiplier=0.2, max=5), reraise=True)


@dataclass
class CopyReport:
    """What one copy wrote: rows and days (rewritten, including emptied ones) per table, and the days left alone."""

    tenant: str
    rows: dict[str, int] = field(default_factory=dict)
    days: dict[str, int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)
    emptied: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    optimized: dict[str, dict[str, int]] = field(default_factory=dict)  # table -> files compacted/vacuumed

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def total_days(self) -> int:
        return sum(self.days.values())


@dataclass
class TablePlan:
    """What a copy does to one table: the store's fingerprint of each day, and the days to rewrite."""

    table: str
    fingerprints: dict[date, tuple[int, str]]  # day -> (rows, fingerprint), the store's now
    write: list[date]  # days the store has whose fingerprint changed (or that were never copied)
    empty: list[date]  # days copied before that the store no longer has
    whole_tenant: bool = False  # replace every partition of the tenant (a full copy)

    @property
    def rows_to_write(self) -> int:
        return sum(self.fingerprints[d][0] for d in self.write)


def _day_sql(table: str) -> str:
    return f"CAST({LAKE_TABLES[table].dated_by} AT TIME ZONE 'UTC' AS DATE)"


def _select(table: str, tenant: str, days_sql: str | None) -> str:
    lt = LAKE_TABLES[table]
    cols = ", ".join(f't."{name}"' for name, _ in lt.columns)
    where = f"WHERE {_day_sql(table)} IN ({days_sql})" if days_sql else f"WHERE {_day_sql(table)} IS NOT NULL"
    return f"SELECT {cols}, '{tenant}' AS {TENANT}, {_day_sql(table)} AS {DAY} FROM {table} t {where}"


def _storage(lake_url: str) -> dict[str, str]:
    return storage_options(lake_url)


def ensure_table(lake_url: str, table: str) -> None:
    """Create ``table`` in the lake, empty, when it is not there yet (readers then find every table)."""
    _create(table_uri(lake_url, table), arrow_schema(table), list(PARTITION_COLUMNS), lake_url)


@_retry_conflicts
def _create(uri: str, schema: pa.Schema, partitions: list[str], lake_url: str) -> None:
    # Two writers creating the same table at once: one commit 0 wins, the other's mode="ignore" then finds it.
    DeltaTable.create(uri, schema, partition_by=partitions, mode="ignore", storage_options=_storage(lake_url))


def _stream(reader: pa.RecordBatchReader, target: pa.Schema, on_batch: Callable[[int], None]) -> Iterator[
        pa.RecordBatch]:
    """The store's batches cast to the lake schema, counted as delta-rs pulls them."""
    for batch in reader:
        on_batch(batch.num_rows)
        yield batch.cast(target)


def _commit(tenant: str, table: str, days: int) -> CommitProperties:
    return CommitProperties(custom_metadata={"provlens.copy": table, "provlens.tenant": tenant,
                                             "provlens.days": str(days)})


def write_days(con: duckdb.DuckDBPyConnection, lake_url: str, tenant: str, table: str, days: list, *,
               whole_tenant: bool = False, progress: Progress | None = None, total: int = 0) -> int:
    """Replace ``tenant``'s partitions of ``table`` for ``days`` (dates) with the store's rows for them, in one
    commit; a day the store no longer has is emptied. ``whole_tenant``: replace every partition of the tenant with
    every row of the store. Returns the rows written."""
    check_tenant(tenant)
    ensure_table(lake_url, table)
    if not days and not whole_tenant:
        return 0
    target = arrow_schema(table)
    day_list = ", ".join(f"DATE '{d.isoformat()}'" for d in days)
    predicate = f"{TENANT} = '{tenant}'"
    if not whole_tenant:
        predicate += f" AND {DAY} IN ({', '.join(repr(d.isoformat()) for d in days)})"
    written = 0

    @_retry_conflicts
    def attempt() -> int:
        nonlocal written
        written = 0  # a retried commit re-reads the store: count only the last attempt's rows

        def counted(n: int) -> None:
            nonlocal written
            written += n
            if progress:
                progress(table, n, total)

        reader = con.sql(_select(table, tenant, None if whole_tenant else day_list)).to_arrow_reader(BATCH_ROWS)
        write_deltalake(table_uri(lake_url, table),
                        pa.RecordBatchReader.from_batches(target, _stream(reader, target, counted)),
                        partition_by=list(PARTITION_COLUMNS), mode="overwrite", predicate=predicate,
                        schema_mode="merge", storage_options=_storage(lake_url), writer_properties=WRITER,
                        commit_properties=_commit(tenant, table, len(days)))
        return written

    return attempt()


def store_days(con: duckdb.DuckDBPyConnection, table: str) -> list:
    """The UTC days ``table`` has rows for, oldest first."""
    return sorted(store_fingerprints(con, table))


def store_fingerprints(con: duckdb.DuckDBPyConnection, table: str) -> dict[date, tuple[int, str]]:
    """Per UTC day of ``table``: its row count and a fingerprint of its rows (count, xor and sum of the rows'
    hashes; the order of rows does not matter, any change to a row changes it)."""
    day = _day_sql(table)
    rows = con.execute(
        f"SELECT {day} AS d, count(*), bit_xor(hash(t)), sum(hash(t)::HUGEINT) % 18446744073709551616 "
        f"FROM {table} t WHERE d IS NOT NULL GROUP BY d").fetchall()
    return {d: (n, f"{n}:{x}:{s}") for d, n, x, s in rows}


def _state_uri(lake_url: str) -> str:
    return table_uri(lake_url, STATE_TABLE)


def copied_fingerprints(lake_url: str, tenant: str) -> dict[str, dict[date, str]]:
    """What the last copies of ``tenant`` recorded: table -> day -> fingerprint (empty for a new lake)."""
    try:
        state = DeltaTable(_state_uri(lake_url), storage_options=_storage(lake_url))
    except TableNotFoundError:
        return {}
    rows = state.to_pyarrow_table(partitions=[(TENANT, "=", tenant)],
                                  columns=["table_name", DAY, "fingerprint"]).to_pylist()
    out: dict[str, dict[date, str]] = {}
    for row in rows:
        out.setdefault(row["table_name"], {})[row[DAY]] = row["fingerprint"]
    return out


def _table_exists(lake_url: str, table: str) -> bool:
    return DeltaTable.is_deltatable(table_uri(lake_url, table), storage_options=_storage(lake_url))


def plan_copy(con: duckdb.DuckDBPyConnection, lake_url: str, tenant: str, *, full: bool = False) -> list[TablePlan]:
    """Per lake table, which days a copy of the store on ``con`` rewrites (see the module docstring)."""
    check_tenant(tenant)
    recorded = {} if full else copied_fingerprints(lake_url, tenant)
    plans = []
    for table in LAKE_TABLES:
        now = store_fingerprints(con, table)
        # A data table that is gone (deleted by hand) makes its recorded state meaningless: copy it whole.
        before = recorded.get(table, {}) if not full and _table_exists(lake_url, table) else {}
        write = sorted(d for d, (_, fp) in now.items() if before.get(d) != fp)
        empty = sorted(d for d in before if d not in now)
        plans.append(TablePlan(table, now, write, empty, whole_tenant=full))
    return plans


@_retry_conflicts
def record_copied(lake_url: str, tenant: str, plan: TablePlan, copied_at: datetime) -> None:
    """Replace the copy state of ``tenant``'s ``plan.table`` with the fingerprints just written (one commit)."""
    days = sorted(plan.fingerprints)
    state = pa.table({
        TENANT: [tenant] * len(days), "table_name": [plan.table] * len(days), DAY: days,
        "rows": [plan.fingerprints[d][0] for d in days], "fingerprint": [plan.fingerprints[d][1] for d in days],
        "copied_at": [copied_at] * len(days)}, schema=STATE_SCHEMA)
    _create(_state_uri(lake_url), STATE_SCHEMA, STATE_PARTITIONS, lake_url)
    write_deltalake(_state_uri(lake_url), state, partition_by=STATE_PARTITIONS, mode="overwrite",
                    predicate=f"{TENANT} = '{tenant}' AND table_name = '{plan.table}'",
                    storage_options=_storage(lake_url), commit_properties=_commit(tenant, plan.table, len(days)))


def copy_store(con: duckdb.DuckDBPyConnection, lake_url: str, tenant: str, *, full: bool = False,
               progress: Progress | None = None) -> CopyReport:
    """Copy every lake table of the store on ``con`` into ``lake_url`` as ``tenant``: only the days whose rows
    changed since the last copy (every day with ``full``). ``progress(table, rows, total)`` is called as rows go."""
    started = time.monotonic()
    report = CopyReport(check_tenant(tenant))
    plans = plan_copy(con, lake_url, tenant, full=full)
    total = sum(p.rows_to_write if not p.whole_tenant else sum(n for n, _ in p.fingerprints.values())
                for p in plans)
    for plan in plans:
        days = sorted(plan.fingerprints) if plan.whole_tenant else sorted(plan.write + plan.empty)
        report.rows[plan.table] = write_days(con, lake_url, tenant, plan.table, days, whole_tenant=plan.whole_tenant,
                                             progress=progress, total=total)
        report.days[plan.table] = len(days)
        report.emptied[plan.table] = len(plan.empty)
        report.unchanged[plan.table] = len(plan.fingerprints) - len(plan.write)
        if days or plan.whole_tenant:  # the state follows the data: a kill in between only redoes these days
            record_copied(lake_url, tenant, plan, datetime.now(timezone.utc))
    report.seconds = time.monotonic() - started
    return report


def optimize_lake(lake_url: str, tenant: str | None = None, *,
                  retention_hours: int = 168) -> dict[str, dict[str, int]]:
    """Compact each lake table's small files (delta-rs ``optimize.compact``; only ``tenant``'s partitions when
    given, so writers of other tenants are not disturbed) and vacuum files that no version newer than
    ``retention_hours`` references. Returns per table the files added, removed and vacuumed."""
    out = {}
    for table in (*LAKE_TABLES, STATE_TABLE):
        if not _table_exists(lake_url, table):
            continue
        dt = DeltaTable(table_uri(lake_url, table), storage_options=_storage(lake_url))
        metrics = _compact(dt, [(TENANT, "=", check_tenant(tenant))] if tenant else None)
        vacuumed = dt.vacuum(retention_hours=retention_hours, dry_run=False, enforce_retention_duration=False)
        out[table] = {"added": int(metrics.get("numFilesAdded", 0)), "removed": int(metrics.get("numFilesRemoved", 0)),
                      "vacuumed": len(vacuumed)}
    return out


@_retry_conflicts
def _compact(dt: DeltaTable, partition_filters: list | None) -> dict:
    dt.update_incremental()
    return dt.optimize.compact(partition_filters=partition_filters, writer_properties=WRITER)
