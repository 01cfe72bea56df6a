"""Copy a store's source tables into the lake: per table, one Delta commit that replaces the tenant's partitions for
the days it writes (``mode="overwrite"`` with a ``lake_tenant = .. AND lake_day IN (..)`` predicate).

A partition rewrite, not a merge on id: what a partition holds after the commit is exactly what the store holds for
that tenant and day, so a re-run, an overlapping window or a store that deleted or corrected rows never leaves a
duplicate or a stale row, and a killed writer leaves no commit at all (Delta commits are atomic; its half-written
files are never referenced and ``vacuum`` removes them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
from deltalake import DeltaTable, WriterProperties, write_deltalake

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


@dataclass
class CopyReport:
    """What one copy wrote: rows and days per table."""

    tenant: str
    rows: dict[str, int] = field(default_factory=dict)
    days: dict[str, int] = field(default_factory=dict)


def _select(table: str, tenant: str, days_sql: str | None) -> str:
    lt = LAKE_TABLES[table]
    cols = ", ".join(f't."{name}"' for name, _ in lt.columns)
    where = f"WHERE CAST({lt.dated_by} AT TIME ZONE 'UTC' AS DATE) IN ({days_sql})" if days_sql else ""
    return (f"SELECT {cols}, '{tenant}' AS {TENANT}, CAST({lt.dated_by} AT TIME ZONE 'UTC' AS DATE) AS {DAY} "
            f"FROM {table} t {where}")


def ensure_table(lake_url: str, table: str) -> None:
    """Create ``table`` in the lake, empty, when it is not there yet (readers then find every table)."""
    DeltaTable.create(table_uri(lake_url, table), arrow_schema(table), partition_by=list(PARTITION_COLUMNS),
                      mode="ignore", storage_options=storage_options(lake_url))


def write_days(con: duckdb.DuckDBPyConnection, lake_url: str, tenant: str, table: str, days: list) -> int:
    """Replace ``tenant``'s partitions of ``table`` for ``days`` (dates) with the store's rows for them, in one
    commit; a day the store no longer has is emptied. Returns the rows written."""
    check_tenant(tenant)
    if not days:
        ensure_table(lake_url, table)
        return 0
    day_list = ", ".join(f"DATE '{d.isoformat()}'" for d in days)
    reader = con.sql(_select(table, tenant, day_list)).to_arrow_reader(BATCH_ROWS)
    target = arrow_schema(table)
    written = 0

    def batches():
        nonlocal written
        for batch in reader:
            written += batch.num_rows
            yield batch.cast(target)

    predicate = f"{TENANT} = '{tenant}' AND {DAY} IN ({', '.join(repr(d.isoformat()) for d in days)})"
    write_deltalake(table_uri(lake_url, table), pa.RecordBatchReader.from_batches(target, batches()),
                    partition_by=list(PARTITION_COLUMNS), mode="overwrite", predicate=predicate,
                    storage_options=storage_options(lake_url), writer_properties=WRITER)
    return written


def store_days(con: duckdb.DuckDBPyConnection, table: str) -> list:
    """The UTC days ``table`` has rows for, oldest first."""
    lt = LAKE_TABLES[table]
    return [r[0] for r in con.execute(
        f"SELECT DISTINCT CAST({lt.dated_by} AT TIME ZONE 'UTC' AS DATE) AS d FROM {table} t "
        "WHERE d IS NOT NULL ORDER BY d").fetchall()]


def copy_store(con: duckdb.DuckDBPyConnection, lake_url: str, tenant: str) -> CopyReport:
    """Copy every lake table of the store on ``con`` into ``lake_url`` as ``tenant`` (all days)."""
    report = CopyReport(check_tenant(tenant))
    for table in LAKE_TABLES:
        days = store_days(con, table)
        report.rows[table] = write_days(con, lake_url, tenant, table, days)
        report.days[table] = len(days)
    return report
