"""``python -m ingest demo``: build a demo database from the simulator through the normal loader.

The database is built beside the target and swapped in with ``os.replace`` so a dashboard reading the
old file never sees a half-built one. Refuses to replace a database that holds real (non-demo) data: any
event or SCIM request the demo build did not load (``--force`` replaces it after a backup copy).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from ingest import dbfile
from ingest.file_ingest import FilesOutcome, ingest_files
from ingest.scim.ingest import ingest_scim
from ingest.store import Store, StoreError


def default_demo_end() -> datetime:
    """The demo ends at the current hour so the dashboard looks live."""
    return datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)


class DemoRefused(StoreError):
    """``ingest demo`` will not replace a store that holds data of its own (exit 2; ``--force`` overrides)."""


# The runs a demo build made are recorded in meta (``demo_max_run_id``: the build's runs are 1..N of a
# fresh file). A demo store built before that key existed is read by its run sources instead: the demo's
# event run has source 'demo', its SCIM run read the simulator's audit trail from a ``provlens-demo-``
# temporary folder.
_DEMO_RUNS_SQL = """
    SELECT run_id FROM ingest_runs
    WHERE CASE WHEN $max_run IS NOT NULL THEN run_id <= $max_run
               ELSE source = 'demo' OR run_id IN (SELECT DISTINCT ingest_run_id FROM scim_requests
                                                  WHERE source_file LIKE '%provlens-demo-%') END
"""


@dataclass
class StoreContents:
    """What ``ingest demo`` found at the target path."""

    exists: bool
    demo: bool = False  # meta demo = 'true'
    events: int = 0  # events not loaded by the demo build (real data)
    scim_requests: int = 0  # SCIM requests not loaded by the demo build

    @property
    def real_rows(self) -> int:
        return self.events + self.scim_requests


def inspect_store(db_path: str) -> StoreContents:
    """Count the rows of ``db_path`` that the demo build did not load; StoreError for a file it cannot read."""
    if not os.path.exists(db_path):
        return StoreContents(exists=False)
    refusal = (f"{db_path} exists and does not hold demo data; refusing to replace it "
               "(choose another --db for the demo)")
    try:
        con = dbfile.connect(db_path, read_only=True)
    except duckdb.Error as exc:
        raise StoreError(f"{refusal}: cannot read it ({type(exc).__name__})") from None
    try:
        meta = dict(con.execute("SELECT key, value FROM meta WHERE key IN ('demo', 'demo_max_run_id')").fetchall())
        max_run = int(meta["demo_max_run_id"]) if meta.get("demo_max_run_id", "").isdigit() else None
        demo_runs = f"({_DEMO_RUNS_SQL})"
        events = con.execute(f"SELECT count(*) FROM events WHERE ingest_run_id IS NULL "
                             f"OR ingest_run_id NOT IN {demo_runs}", {"max_run": max_run}).fetchone()[0]
        scim = con.execute(f"SELECT count(*) FROM scim_requests WHERE ingest_run_id IS NULL "
                           f"OR ingest_run_id NOT IN {demo_runs}", {"max_run": max_run}).fetchone()[0]
    except duckdb.Error:
        raise StoreError(f"{refusal}: it is not a provlens database") from None
    finally:
        con.close()
    # A store the demo never built has no demo runs: every row counts as real data.
    return StoreContents(exists=True, demo=meta.get("demo") == "true", events=events, scim_requests=scim)


def _check_replaceable(db_path: str, force: bool) -> StoreContents:
    found = inspect_store(db_path)
    if not found.exists or force:
        return found
    if not found.demo:
        raise DemoRefused(f"{db_path} exists and does not hold demo data ({found.events:,} events, "
                          f"{found.scim_requests:,} SCIM requests); refusing to replace it (choose another --db "
                          "for the demo, or --force to replace it after a backup copy)")
    if found.real_rows:
        raise DemoRefused(f"{db_path} is a demo database but holds {found.real_rows:,} non-demo rows "
                          f"({found.events:,} events, {found.scim_requests:,} SCIM requests loaded after the "
                          "demo was built); refusing to replace it (choose another --db for the demo, or "
                          "--force to replace it after a backup copy)")
    return found


def backup_copy(db_path: str) -> str:
    """Copy ``db_path`` (and its WAL, if any) to ``<db>.bak-<UTC time>``; returns the copy's path."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = f"{db_path}.bak-{stamp}"
    n = 1
    while os.path.exists(target):
        n += 1
        target = f"{db_path}.bak-{stamp}-{n}"
    shutil.copy2(db_path, target)
    if os.path.exists(db_path + ".wal"):
        shutil.copy2(db_path + ".wal", target + ".wal")
    return target


def _load_directory_audits(store: Store, entries: list[dict]) -> None:
    """The simulator's directory audit log, as a pull would load it: the provisioning service's entries (issue 24)."""
    from ingest.audit_sql import PROVISIONING_SERVICE

    mine = [json.dumps(e) for e in entries if e.get("loggedByService") == PROVISIONING_SERVICE]
    run_id = store.start_run("demo-audit")
    result = store.load_directory_audits("SELECT unnest($rows::JSON[]) AS raw, 'simulator directory audit log' AS pos",
                                         {"rows": mine}, run_id=run_id, run_counters={})
    store.finish_run(run_id, "success", f"demo: {result.new} directory audit entries")


def build_demo(db_path: str, *, seed: int = 7, users: int = 200, days: int = 14,
               end: datetime | None = None, quiet: bool = False, force: bool = False) -> FilesOutcome:
    """Build the demo into ``db_path``. A store holding any non-demo event or SCIM request (or no demo at all) is
    refused with :class:`DemoRefused` unless ``force``; with ``force`` it is first copied aside
    (``outcome.backup`` names the copy)."""
    from simulator import generate, write  # the simulator is only needed for the demo

    _check_replaceable(db_path, force)
    end = end or default_demo_end()
    sim = generate(seed=seed, users=users, days=days, end=end)
    Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    backup = None
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
                _load_directory_audits(store, sim.directory_audits)
                max_run = store.con.execute("SELECT coalesce(max(run_id), 0) FROM ingest_runs").fetchone()[0]
                for key, value in {"demo": "true", "demo_seed": str(seed), "demo_users": str(users),
                                   "demo_days": str(days), "demo_end": end.isoformat(),
                                   "truth_events": str(sim.truth["events"]["total"]),
                                   "demo_max_run_id": str(max_run)}.items():
                    store.set_meta(key, value)
                store.con.execute("CHECKPOINT")
            # Checked again just before the swap: real data may have been loaded while the demo was built.
            found = _check_replaceable(db_path, force)
            if found.exists and force and (found.real_rows or not found.demo):
                backup = backup_copy(db_path)
            os.replace(building, db_path)
        finally:
            for leftover in (building, building + ".wal"):
                if os.path.exists(leftover):
                    os.unlink(leftover)
    outcome.backup = backup
    return outcome
