"""The dashboard's local copy of one lake tenant: a normal store file built from the tenant's rows in the lake.

The pages read summary tables, a cache the store rebuilds from the source tables (:func:`ingest.summaries.ensure`).
So a dashboard over a lake (``PROVLENS_LAKE``) reads a store of its own per tenant, at
``<cache root>/<hash of the lake URL>/<tenant>.duckdb`` (cache root: ``PROVLENS_CACHE``, else
``~/.cache/provlens/lake``): created with the store's own schema, loaded with the tenant's rows of every lake table
through :meth:`ingest.store.Store.replace_source_rows`, its summaries rebuilt. The Delta version of each lake table
it was built from is kept in the file's ``meta`` table (``lake_versions``); it is built again only when one of
them changed. A build writes a new file beside the old one and renames it into place, so readers see the old
file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.compute as pc
from deltalake import DeltaTable

from ingest import dbfile, schema
from ingest.lake.layout import LAKE_TABLES, TENANT, check_tenant, storage_options, table_uri

CACHE_ENV = "PROVLENS_CACHE"
VERSIONS_KEY = "lake_versions"  # meta: {"table": Delta version, ...} the file was built from

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


@dataclass
class TenantCache:
    """Where a tenant's copy lives, and the lake's tables (at the versions just read) it must match."""

    lake_url: str
    tenant: str
    path: str
    tables: dict[str, DeltaTable]

    @property
    def versions(self) -> dict[str, int]:
        return {name: table.version() for name, table in self.tables.items()}


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "provlens" / "lake").expanduser()


def lake_key(lake_url: str) -> str:
    """A short, stable name for a lake (its URL's hash: a URL may hold characters no folder name takes)."""
    url = lake_url if "://" in lake_url else os.path.abspath(os.path.expanduser(lake_url))
    return hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]


def cache_path(lake_url: str, tenant: str) -> str:
    return str(cache_root() / lake_key(lake_url) / f"{check_tenant(tenant)}.duckdb")


def open_lake(lake_url: str, tenant: str) -> TenantCache:
    """The lake's tables at their current versions (one read of each table's log), for ``tenant``."""
    tables = {name: DeltaTable(table_uri(lake_url, name), storage_options=storage_options(lake_url))
              for name in LAKE_TABLES}
    return TenantCache(lake_url, tenant, cache_path(lake_url, tenant), tables)


def built_versions(path: str) -> dict[str, int] | None:
    """The lake versions the file at ``path`` was built from; None when there is no usable file (missing, not a
    store, written by another provlens)."""
    if not os.path.exists(path):
        return None
    try:
        with dbfile.read_connection(path) as con:
            row = con.execute("SELECT value FROM meta WHERE key = ?", [VERSIONS_KEY]).fetchone()
    except Exception:  # noqa: BLE001 - any unreadable copy is simply built again
        return None
    return json.loads(row[0]) if row else None


def is_current(cache: TenantCache) -> bool:
    return built_versions(cache.path) == cache.versions


def _lock(path: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(path, threading.Lock())


def build(cache: TenantCache, *, progress=None) -> float:
    """Build the tenant's copy from the lake tables' versions in ``cache`` (unless another thread of this process
    just did); returns the seconds it took (0 when it was current already). ``progress(step)`` is told of each
    step."""
    from ingest.store import Store

    with _lock(cache.path):
        if is_current(cache):
            return 0.0
        started = time.perf_counter()
        Path(cache.path).parent.mkdir(parents=True, exist_ok=True)
        fresh = f"{cache.path}.building-{os.getpid()}-{threading.get_ident()}"
        for leftover in (fresh, fresh + ".wal"):
            if os.path.exists(leftover):
                os.unlink(leftover)
        wanted = pc.field(TENANT) == cache.tenant
        sources = {name: table.to_pyarrow_dataset().scanner(columns=schema.names(LAKE_TABLES[name].columns),
                                                            filter=wanted).to_reader()
                   for name, table in cache.tables.items()}
        meta = {VERSIONS_KEY: json.dumps(cache.versions, sort_keys=True), "lake_url_key": lake_key(cache.lake_url),
                "lake_tenant": cache.tenant, "lake_built_at": datetime.now(timezone.utc).isoformat()}
        try:
            with Store.open(fresh) as store:
                if progress:
                    progress("rows")
                store.replace_source_rows(sources, meta, progress=progress)
            dbfile.release(cache.path)  # this process's readers let go of the old file
            os.replace(fresh, cache.path)
        finally:
            for leftover in (fresh, fresh + ".wal"):
                if os.path.exists(leftover):
                    os.unlink(leftover)
            shutil.rmtree(fresh + ".tmp", ignore_errors=True)  # the writer's spill folder (ingest/dbfile.py)
        return time.perf_counter() - started


def ensure(lake_url: str, tenant: str, *, progress=None) -> tuple[str, float]:
    """The path of ``tenant``'s current copy of the lake, built first when the lake changed since; and the
    seconds a build took (0: none was needed)."""
    cache = open_lake(lake_url, tenant)
    return cache.path, build(cache, progress=progress)
