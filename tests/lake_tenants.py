"""What the lake dashboard tests share: a two-tenant local lake (the demo store as "contoso", a second store the
simulator built with other arguments as "fabrikam", each copied by ``copy_store``) and the Overview's KPIs from the
plain reference query over a store's own source rows."""

from __future__ import annotations

from pathlib import Path

import duckdb

from ingest.dbfile import connect
from ingest.lake.copy import copy_store
from queries.db import run_sql
from queries.filters import Filters
from queries.reference import REFERENCES
from tests.conftest import SIM_ARGS, SIM_END, run_cli

TENANTS = ("contoso", "fabrikam")
KPI_LABELS = ("Events", "Failures", "Skipped", "Sync cycles", "Identities", "Failed in this period", "Failing now",
              "Success rate")


def other_store(folder: Path) -> str:
    """A second tenant's store, built by the simulator with other arguments than the demo's."""
    db = folder / "other.duckdb"
    run_cli("ingest", "demo", "--db", str(db), "--seed", str(SIM_ARGS["seed"] + 6), "--users", "35", "--days", "4",
            "--end", SIM_END.isoformat(), "-q", check=True)
    return str(db)


def copy_into(db: str, lake: str, tenant: str, *, full: bool = False) -> None:
    """Copy ``db`` into ``lake`` as ``tenant`` (``full``: rewrite every day, a new commit per table even when
    nothing changed; the incremental copy writes nothing then)."""
    con = connect(str(db), read_only=True)
    try:
        copy_store(con, lake, tenant, full=full)
    finally:
        con.close()


def two_tenant_lake(demo_db: str, other_db: str, folder: Path) -> str:
    url = str(folder / "lake")
    copy_into(demo_db, url, "contoso")
    copy_into(other_db, url, "fabrikam")
    return url


def reference_kpis(db: str) -> dict[str, str]:
    """The Overview's numbers as the page formats them (all time), from the reference query over ``db``."""
    with duckdb.connect(str(db), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        k = run_sql(con, REFERENCES["overview_kpis"], Filters().params()).iloc[0]
    return {"Events": f"{int(k['events']):,}", "Failures": f"{int(k['failure']):,}",
            "Skipped": f"{int(k['skipped']):,}", "Sync cycles": f"{int(k['cycles']):,}",
            "Identities": f"{int(k['identities']):,}", "Failed in this period": f"{int(k['failed_identities']):,}",
            "Failing now": f"{int(k['failing_identities']):,}", "Success rate": f"{k['success_rate']:.1%}"}
