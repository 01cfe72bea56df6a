"""``python -m ingest demo``: build a demo database from the simulator through the normal loader.

The database is built beside the target and swapped in with ``os.replace`` so a dashboard reading the
old file never sees a half-built one. Refuses to replace a database that holds real (non-demo) data.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from ingest.file_ingest import FilesOutcome, ingest_files
from ingest.scim.ingest import ingest_scim
from ingest.store import Store, StoreError


def default_demo_end() -> datetime:
    """The demo ends at the current hour so the dashboard looks live."""
    return datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)


def _holds_real_data(db_path: str) -> bool:
    if not os.path.exists(db_path):
        return False
    try:
        con = duckdb.connect(db_path, read_only=True)
    except duckdb.Error:
        return True  # unreadable or locked: never replace what we cannot inspect
    try:
        row = con.execute("SELECT value FROM meta WHERE key = 'demo'").fetchone()
        return not (row and row[0] == "true")
    except duckdb.Error:
        return True
    finally:
        con.close()


def build_demo(db_path: str, *, seed: int = 7, users: int = 200, days: int = 14,
               end: datetime | None = None, quiet: bool = False) -> FilesOutcome:
    from simulator import generate, write  # the simulator is only needed for the demo

    if _holds_real_data(db_path):
        raise StoreError(f"{db_path} exists and does not hold demo data; refusing to replace it "
                         "(choose another --db for the demo)")
    end = end or default_demo_end()
    sim = generate(seed=seed, users=users, days=days, end=end)
    Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="provlens-demo-") as tmp:
        paths = write(sim, tmp)
        building = os.path.join(os.path.dirname(os.path.abspath(db_path)),
                                f".{os.path.basename(db_path)}.building-{os.getpid()}")
        try:
            outcome = ingest_files(building, [str(Path(tmp) / "graph")], source="demo", quiet=quiet)
            # SCIM: the simulated server's audit trail, then the Entra <-> SCIM correlation (issue 4).
            ingest_scim(building, [str(paths["scim_audit"])], quiet=quiet, correlate=True)
            with Store.open(building) as store:
                store.load_job_snapshots(sim.job_snapshots)
                for key, value in {"demo": "true", "demo_seed": str(seed), "demo_users": str(users),
                                   "demo_days": str(days), "demo_end": end.isoformat(),
                                   "truth_events": str(sim.truth["events"]["total"])}.items():
                    store.set_meta(key, value)
                store.con.execute("CHECKPOINT")
            _ = paths
            os.replace(building, db_path)
        finally:
            for leftover in (building, building + ".wal"):
                if os.path.exists(leftover):
                    os.unlink(leftover)
    return outcome
