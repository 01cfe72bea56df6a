"""The lake's layout: which source tables it holds, their Arrow schema, how each row is dated and where each table
lives.

One Delta table per source table, ``<lake>/<table>``, partitioned by ``lake_tenant`` (the tenant a store belongs
to) and ``lake_day`` (the UTC day of the row's own time, a DATE). Every column of the store's table is kept, in the
store's order, followed by the two partition columns. Bookkeeping (watermarks, file and blob read state, metadata,
alerts) stays in each store: it is one machine's state, not data anyone else queries.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import pyarrow as pa

from ingest import schema

# Named apart from every store column (scim_requests has a "tenant" of its own: the SCIM server's).
PARTITION_COLUMNS = ("lake_tenant", "lake_day")
TENANT, DAY = PARTITION_COLUMNS
# A tenant name goes into paths and into Delta predicates: a GUID, a domain or a short label, nothing else.
TENANT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class LakeTable:
    """A store table as the lake holds it: its name and the SQL (over alias ``t``) of the TIMESTAMPTZ that dates a
    row (its ``lake_day`` is that instant's UTC date)."""

    name: str
    dated_by: str

    @property
    def columns(self) -> schema.Columns:
        return schema.TABLES[self.name][0]


LAKE_TABLES: dict[str, LakeTable] = {t.name: t for t in (
    LakeTable("events", "t.activity_time"),
    LakeTable("scim_requests", "t.ts"),
    LakeTable("correlation", "coalesce(t.event_time, t.request_ts, t.computed_at)"),
    LakeTable("sync_job_snapshots", "t.captured_at"),
    LakeTable("directory_audits", "t.activity_time"),
    LakeTable("ingest_runs", "t.started_at"),
    LakeTable("ingest_rejects", "t.rejected_at"),
    LakeTable("preflight_runs", "t.started_at"),
    # A finding is dated by its run (findings have no time of their own).
    LakeTable("preflight_findings",
              "(SELECT r.started_at FROM preflight_runs r WHERE r.run_id = t.run_id)"),
)}


def _arrow_type(sql_type: str) -> pa.DataType:
    """The Arrow type of a store column, from its declared DuckDB type (first word; constraints ignored)."""
    base = sql_type.split()[0].upper()
    if base.endswith("[]"):
        return pa.list_(_arrow_type(base[:-2]))
    return {
        "VARCHAR": pa.string(), "JSON": pa.string(), "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
        "INTEGER": pa.int32(), "BIGINT": pa.int64(), "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_(),
    }[base]


def arrow_schema(table: str) -> pa.Schema:
    """The lake schema of ``table``: the store's columns (nullable: a lake never enforces the store's NOT NULL) and
    then ``lake_tenant`` (string) and ``lake_day`` (date32)."""
    fields = [pa.field(name, _arrow_type(sql_type)) for name, sql_type in LAKE_TABLES[table].columns]
    return pa.schema([*fields, pa.field(TENANT, pa.string()), pa.field(DAY, pa.date32())])


def check_tenant(tenant: str) -> str:
    """``tenant`` if it is a safe partition value, else ValueError saying what is allowed."""
    if not TENANT_PATTERN.match(tenant or ""):
        raise ValueError(f"tenant {tenant!r} is not a valid lake tenant: use letters, digits, '.', '_' or '-' "
                         "(up to 128, starting with a letter or digit), such as the tenant's GUID")
    return tenant


def is_remote(url: str) -> bool:
    """Whether ``url`` names object storage (``az://``, ``abfs://``, ``abfss://``) rather than a local path."""
    return url.split("://", 1)[0].lower() in ("az", "abfs", "abfss", "azure") if "://" in url else False


def table_uri(lake_url: str, table: str) -> str:
    """Where ``table`` lives under the lake ``lake_url`` (a local directory or an object-storage URL)."""
    if is_remote(lake_url):
        return lake_url.rstrip("/") + "/" + table
    return os.path.join(os.path.abspath(os.path.expanduser(lake_url)), table)


def storage_options(lake_url: str) -> dict[str, str]:
    """Options for delta-rs. Empty for a local path. For Azure, delta-rs reads the standard ``AZURE_STORAGE_*``
    variables itself (account and key, SAS, service principal, managed identity, ``AZURE_STORAGE_USE_EMULATOR``
    with ``AZURITE_BLOB_STORAGE_URL`` for Azurite): no secret passes through provlens' own arguments or logs."""
    if not is_remote(lake_url):
        return {}
    opts: dict[str, str] = {}
    if os.environ.get("AZURE_STORAGE_USE_EMULATOR", "").lower() in ("1", "true", "yes"):
        opts["azure_storage_use_emulator"] = "true"
        opts["azure_allow_http"] = "true"
    return opts
