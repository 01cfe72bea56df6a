"""`python -m ingest migrate`: a store written by the previous provlens (schema 18, whose summaries were migrated
tables; tests/data/stores/) is upgraded in place: its source rows are kept, its summaries rebuilt from them, and
every page query then equals its reference. Until then the read-only paths (exports, pages) say how to upgrade it;
a newer store is refused by every reader with "upgrade provlens"."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import duckdb
import pytest

from ingest import exitcodes, schema, summaries
from queries.db import StoreOutOfDate, release, run, run_sql
from queries.filters import Filters
from queries.reference import REFERENCES
from tests.conftest import ROOT, run_cli

OLD_STORE = ROOT / "tests" / "data" / "stores" / "schema18-demo.duckdb.gz"
SOURCE_TABLES = ("events", "scim_requests", "correlation", "ingest_runs", "watermarks", "sync_job_snapshots",
                 "scim_file_state", "ingest_rejects")


@pytest.fixture
def old_store(tmp_path) -> Path:
    db = tmp_path / "old.duckdb"
    with gzip.open(OLD_STORE) as src, open(db, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return db


def _version(path) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("SELECT max(version) FROM schema_version").fetchone()[0]


# Columns the upgrade adds (scim_file_state.mtime_ns, events.skip_detail) or computes again from the raw JSON
# (migration 23: the skip classification); test_the_upgrade_classifies_stored_skips_as_a_fresh_load_does checks those.
RECOMPUTED = ("mtime_ns", "skip_detail", "skip_category", "skip_reason")


def _source_rows(path) -> dict[str, list]:
    """Every row of the source tables, in the columns schema 18 had, bar the recomputed ones."""
    with duckdb.connect(str(path), read_only=True) as con:
        columns = {t: [c for (c,) in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = ? "
                                                 "AND column_name NOT IN ? ORDER BY column_index",
                                                 [t, list(RECOMPUTED)]).fetchall()] for t in SOURCE_TABLES}
        return {t: con.execute(f"SELECT {', '.join(c)} FROM {t} ORDER BY ALL").fetchall() for t, c in columns.items()}


def test_migrate_upgrades_the_previous_provlens_store_keeping_its_rows(old_store, tmp_path):
    assert _version(old_store) == 18 < schema.LATEST_VERSION
    before = _source_rows(old_store)
    assert before["events"] and before["scim_requests"] and before["correlation"]

    # Before: the export (read-only) refuses and names the command that fixes it.
    refused = run_cli("queries", "export", "violations", "--db", str(old_store), "--out", str(tmp_path / "v.csv"))
    assert refused.returncode == exitcodes.DATABASE, refused.stderr
    assert "python -m ingest migrate" in refused.stderr

    done = run_cli("ingest", "migrate", "--db", str(old_store))
    assert done.returncode == exitcodes.OK, done.stderr
    assert f"schema version 18 -> {schema.LATEST_VERSION}" in done.stderr
    for s in summaries.declared():
        assert f"rebuilding summary {s.table} " in done.stderr
    assert _version(old_store) == schema.LATEST_VERSION
    assert _source_rows(old_store) == before

    with duckdb.connect(str(old_store), read_only=True) as con:
        tables = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    assert tables == set(schema.TABLES) | set(schema.BOOKKEEPING) | {s.table for s in summaries.declared()}
    assert not {k for k in meta if "sorted_rows" in k or "pending" in k or "rekey" in k}

    # Every page query with a reference answers as its reference does on the upgraded store.
    db = str(old_store)
    with duckdb.connect(db, read_only=True) as con:
        source_id, cycle_id = con.execute(
            "SELECT any_value(source_id), any_value(cycle_id) FROM events WHERE status = 'failure'").fetchone()
    params = {"limit": 5, "cycle_id": cycle_id, "source_id": source_id, "term": "a"}
    for name, reference in REFERENCES.items():
        got = run(db, name, Filters(), **params)
        with duckdb.connect(db, read_only=True) as con:
            con.execute("SET TimeZone = 'UTC'")
            want = run_sql(con, reference, Filters().params() | params)
        assert got.astype(str).values.tolist() == want.astype(str).values.tolist(), name
    release(db)

    after = run_cli("queries", "export", "violations", "--db", db, "--out", str(tmp_path / "v.csv"))
    assert after.returncode == exitcodes.OK, after.stderr
    again = run_cli("ingest", "migrate", "--db", db)
    assert again.returncode == exitcodes.OK and f"already at schema version {schema.LATEST_VERSION}" in again.stderr
    assert "rebuilding" not in again.stderr


def test_a_store_whose_summaries_are_stale_is_refused_by_readers_until_migrated(demo_db, tmp_path):
    db = tmp_path / "stale.duckdb"
    shutil.copy(demo_db, db)
    with duckdb.connect(str(db)) as con:  # as a provlens with another definition of derived_cycles left it
        con.execute("UPDATE summary_state SET fingerprint = 'older' WHERE summary = 'derived_cycles'")
    with pytest.raises(StoreOutOfDate, match="derived_cycles"):
        run(str(db), "cycles", Filters())
    done = run_cli("ingest", "migrate", "--db", str(db))
    assert done.returncode == exitcodes.OK and "rebuilding summary derived_cycles " in done.stderr, done.stderr
    assert len(run(str(db), "cycles", Filters())) > 0
    release(str(db))


def test_a_newer_store_is_refused_by_every_reader_and_writer(demo_db, tmp_path):
    db = tmp_path / "newer.duckdb"
    shutil.copy(demo_db, db)
    with duckdb.connect(str(db)) as con:
        con.execute("INSERT INTO schema_version VALUES (?, 'from the future', now())", [schema.LATEST_VERSION + 1])
    with pytest.raises(StoreOutOfDate, match="upgrade provlens"):
        run(str(db), "overview_kpis", Filters())
    export = run_cli("queries", "export", "events", "--db", str(db), "--out", str(tmp_path / "e.csv"))
    assert export.returncode == exitcodes.DATABASE and "upgrade provlens" in export.stderr
    migrate = run_cli("ingest", "migrate", "--db", str(db))
    assert migrate.returncode != exitcodes.OK and "upgrade provlens" in migrate.stderr


def test_a_store_older_than_the_upgrade_reads_is_refused(old_store):
    with duckdb.connect(str(old_store)) as con:
        con.execute("DELETE FROM schema_version WHERE version > 12")
    done = run_cli("ingest", "migrate", "--db", str(old_store))
    assert done.returncode != exitcodes.OK and "older than this provlens can upgrade" in done.stderr


def test_migrate_refuses_missing_and_foreign_files(tmp_path):
    missing = run_cli("ingest", "migrate", "--db", str(tmp_path / "nope.duckdb"))
    assert missing.returncode == exitcodes.USAGE and "does not exist" in missing.stderr
    assert not (tmp_path / "nope.duckdb").exists()

    foreign = tmp_path / "other.duckdb"
    with duckdb.connect(str(foreign)) as con:
        con.execute("CREATE TABLE invoices (n INTEGER)")
    refused = run_cli("ingest", "migrate", "--db", str(foreign))
    assert refused.returncode == exitcodes.DATABASE and "not a provlens one" in refused.stderr
    with duckdb.connect(str(foreign), read_only=True) as con:
        assert [r[0] for r in con.execute("SHOW TABLES").fetchall()] == ["invoices"]


def test_the_upgrade_classifies_stored_skips_as_a_fresh_load_does(old_store, tmp_path):
    """Migration 23: the skipped events an older provlens stored get the skip-reason table's category, reason and
    detail, the same as loading their raw JSON into a new store gives (no re-download)."""
    from ingest.store import Store

    done = run_cli("ingest", "migrate", "--db", str(old_store))
    assert done.returncode == exitcodes.OK, done.stderr
    sql = "SELECT id, skip_category, skip_reason, skip_detail FROM events WHERE status = 'skipped' ORDER BY id"
    with duckdb.connect(str(old_store), read_only=True) as con:
        upgraded = con.execute(sql).fetchall()
        raws = [r for (r,) in con.execute("SELECT raw::VARCHAR FROM events WHERE status = 'skipped'").fetchall()]
        stored_skips = con.execute("SELECT skip_category, sum(skips) FROM derived_skip_reasons GROUP BY ALL "
                                   "ORDER BY ALL").fetchall()
    assert upgraded
    with Store.open(str(tmp_path / "fresh.duckdb")) as store:
        store.load_events("SELECT unnest(?::JSON[]) AS raw, 'fresh#1' AS pos", [raws], run_id=None)
        assert store.con.execute(sql).fetchall() == upgraded
        # the summaries were rebuilt from the corrected rows
        assert store.con.execute("SELECT skip_category, count(*) FROM events WHERE status = 'skipped' "
                                 "GROUP BY ALL ORDER BY ALL").fetchall() == stored_skips
