"""Copying one store file into a lake from a command line: ``python -m queries lake`` and the write-through of
``python -m ingest ... --lake URL`` both call :func:`copy_db` and print :func:`summary`.

The store is opened read-only (:func:`ingest.dbfile.read_connection`, like every other reader); the tenant defaults to
the single ``tenant_id`` its events name.
"""

from __future__ import annotations

import sys

from tqdm import tqdm

from ingest.dbfile import read_connection
from ingest.lake.copy import CopyReport, copy_store, optimize_lake
from ingest.lake.errors import LakeUsageError, check_lake_tenant, check_lake_url


def store_tenant(con) -> str:
    """The one tenant the store's events name; LakeUsageError when there is none or several."""
    tenants = [r[0] for r in con.execute(
        "SELECT DISTINCT tenant_id FROM events WHERE tenant_id IS NOT NULL ORDER BY 1 LIMIT 3").fetchall()]
    if len(tenants) == 1:
        return tenants[0]
    found = "no tenant id" if not tenants else f"several tenant ids ({', '.join(tenants[:2])}, ...)"
    raise LakeUsageError(f"the store's events name {found}: pass --tenant NAME (letters, digits, '.', '_', '-')")


def copy_db(db: str, lake_url: str, tenant: str | None = None, *, full: bool = False, quiet: bool = False,
            optimize: bool = False) -> CopyReport:
    """Copy the store ``db`` into ``lake_url`` as ``tenant`` (default: the store's own), incrementally; with a
    progress bar on a terminal unless ``quiet``; ``optimize``: then compact and vacuum the lake's tables."""
    check_lake_url(lake_url)
    if tenant is not None:
        check_lake_tenant(tenant)
    with read_connection(db) as con:
        tenant = check_lake_tenant(tenant or store_tenant(con))
        bar = tqdm(total=0, unit="row", unit_scale=True, desc="lake", file=sys.stderr, leave=False,
                   disable=quiet or not sys.stderr.isatty())

        def progress(table: str, rows: int, total: int) -> None:
            if bar.total != total:
                bar.total = total
            bar.set_description(f"lake {table}", refresh=False)
            bar.update(rows)

        try:
            report = copy_store(con, lake_url, tenant, full=full, progress=progress)
        finally:
            bar.close()
    if optimize:
        report.optimized = optimize_lake(lake_url, tenant)
    return report


def summary(report: CopyReport, lake_url: str) -> str:
    """One line: tables, days rewritten (and emptied), days unchanged, rows and seconds."""
    emptied = sum(report.emptied.values())
    text = (f"lake {lake_url}: tenant {report.tenant}: {len(report.rows)} tables, {report.total_days} day(s) "
            f"rewritten" + (f" ({emptied} emptied)" if emptied else "") + f", {sum(report.unchanged.values())} "
            f"unchanged, {report.total_rows:,} rows in {report.seconds:.1f} s")
    if report.optimized:
        removed = sum(m["removed"] for m in report.optimized.values())
        vacuumed = sum(m["vacuumed"] for m in report.optimized.values())
        text += f"; optimize: {removed} small file(s) compacted, {vacuumed} old file(s) vacuumed"
    return text
