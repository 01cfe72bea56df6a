"""DuckDB over the lake: an in-memory DuckDB whose views, named like the store's source tables, read the lake's
Delta tables (through delta-rs' Arrow dataset, so a local path and Azure both work without a DuckDB extension).

Every reference query and every named query that reads only source tables then runs on it unchanged. A view holds
the chosen tenants' rows only (all tenants when none is chosen) and drops the two partition columns, so its columns
are the store table's, in the store's order.
"""

from __future__ import annotations

import duckdb
from deltalake import DeltaTable

from ingest.dbfile import connect
from ingest.lake.layout import DAY, LAKE_TABLES, TENANT, check_tenant, storage_options, table_uri


def _table(lake_url: str, table: str) -> DeltaTable:
    return DeltaTable(table_uri(lake_url, table), storage_options=storage_options(lake_url))


def lake_tenants(lake_url: str) -> list[str]:
    """The tenants the lake's events table holds, sorted: from the Delta log's partition values (no data file is
    read; a process that scanned an object-storage table through the Arrow dataset could abort at exit)."""
    return sorted({partition[TENANT] for partition in _table(lake_url, "events").partitions()})


def lake_connection(lake_url: str, tenants: list[str] | None = None) -> duckdb.DuckDBPyConnection:
    """A new in-memory DuckDB with one view per lake table (named as in the store) over ``tenants``' rows (all
    tenants when ``None``). Each Delta table is read at its version as of this call."""
    con = connect(":memory:")
    where = ""
    if tenants is not None:
        where = f"WHERE {TENANT} IN ({', '.join(repr(check_tenant(t)) for t in tenants) or 'NULL'})"
    for table in LAKE_TABLES:
        con.register(f"lake_{table}", _table(lake_url, table).to_pyarrow_dataset())
        con.execute(f"CREATE VIEW {table} AS SELECT * EXCLUDE ({TENANT}, {DAY}) FROM lake_{table} {where}")
    return con
