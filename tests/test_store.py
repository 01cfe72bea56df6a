"""The store: migrations, refusing foreign or corrupt files, watermarks, run history."""

from __future__ import annotations

from datetime import datetime, timezone

import duckdb
import pytest

from ingest import schema
from ingest.schema import LATEST_VERSION
from ingest.store import NotAProvlensDatabase, Store, StoreError


def test_migrations_apply_once_and_record_the_version(tmp_path):
    db = str(tmp_path / "a.duckdb")
    with Store.open(db) as store:
        assert store.migrations_applied == [schema.BASELINE] and store.summaries_rebuilt  # a new store: all built
        assert store.migrate() == LATEST_VERSION
    with Store.open(db) as store:  # reopening applies and rebuilds nothing
        versions = store.con.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
        assert store.migrations_applied == [] and store.summaries_rebuilt == []
    assert [v for (v,) in versions] == [schema.BASELINE, *(v for v, _, _ in schema.MIGRATIONS)]


def test_foreign_duckdb_file_is_refused_and_left_untouched(tmp_path):
    db = tmp_path / "foreign.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE invoices (n INTEGER)")
    con.close()
    before = db.read_bytes()
    with pytest.raises(NotAProvlensDatabase, match="not a provlens"):
        Store.open(str(db))
    assert db.read_bytes() == before


def test_corrupt_file_is_refused_and_left_untouched(tmp_path):
    db = tmp_path / "junk.duckdb"
    db.write_bytes(b"this is not a database" * 500)
    before = db.read_bytes()
    with pytest.raises(StoreError):
        Store.open(str(db))
    assert db.read_bytes() == before


def test_newer_schema_is_refused(tmp_path):
    db = str(tmp_path / "new.duckdb")
    with Store.open(db) as store:
        store.con.execute("INSERT INTO schema_version VALUES (999, 'future', now())")
    with pytest.raises(StoreError, match="newer"):
        Store.open(db)


def test_watermark_only_moves_forward_and_commits_with_rows(tmp_path):
    db = str(tmp_path / "w.duckdb")
    t1 = datetime(2026, 10, 1, tzinfo=timezone.utc)
    t0 = datetime(2026, 9, 1, tzinfo=timezone.utc)
    with Store.open(db) as store:
        run = store.start_run("graph", "sp")
        src = ("SELECT '{\"id\":\"e1\",\"activityDateTime\":\"2026-10-01T00:00:00Z\"}'::JSON AS raw, "
               "'x#1' AS pos")
        res = store.load_events(src, run_id=run, watermark=("graph", "sp", t1))
        assert (res.new, res.updated) == (1, 0)
        store.set_watermark("graph", "sp", t0)
        assert store.get_watermark("graph", "sp") == t1


def test_failed_load_rolls_back_rows_and_watermark(tmp_path):
    db = str(tmp_path / "r.duckdb")
    with Store.open(db) as store:
        run = store.start_run("graph", "sp")
        with pytest.raises(duckdb.Error):
            store.load_events("SELECT 'not json'::JSON AS raw, 'x' AS pos", run_id=run,
                              watermark=("graph", "sp", datetime(2026, 1, 1, tzinfo=timezone.utc)))
        assert store.get_watermark("graph", "sp") is None
        assert store.con.execute("SELECT count(*) FROM events").fetchone()[0] == 0


def test_unfinished_run_is_marked_abandoned_by_the_next(tmp_path):
    db = str(tmp_path / "runs.duckdb")
    with Store.open(db) as store:
        first = store.start_run("files")
    with Store.open(db) as store:
        store.start_run("files")
        outcome = store.con.execute("SELECT outcome FROM ingest_runs WHERE run_id = ?", [first]).fetchone()[0]
    assert outcome == "abandoned"


def test_changed_event_is_updated_and_unchanged_is_left_alone(tmp_path):
    db = str(tmp_path / "u.duckdb")
    v1 = '{"id":"e1","activityDateTime":"2026-10-01T00:00:00Z","provisioningStatusInfo":{"status":"failure"}}'
    v2 = '{"id":"e1","activityDateTime":"2026-10-01T00:00:00Z","provisioningStatusInfo":{"status":"success"}}'

    def load(store, raw):
        return store.load_events("SELECT ?::JSON AS raw, 'x#1' AS pos", [raw], run_id=store.start_run("t"))

    with Store.open(db) as store:
        assert (load(store, v1).new, load(store, v1).unchanged) == (1, 1)
        first = store.con.execute("SELECT first_ingested_at FROM events").fetchone()[0]
        res = load(store, v2)
        assert (res.new, res.updated) == (0, 1)
        status, kept_first, count = store.con.execute(
            "SELECT status, first_ingested_at, count(*) OVER () FROM events").fetchone()
    assert (status, kept_first, count) == ("success", first, 1)


def test_duplicate_ids_in_one_batch_collapse_to_one_row(tmp_path):
    db = str(tmp_path / "d.duckdb")
    raw = '{"id":"e1","activityDateTime":"2026-10-01T00:00:00Z"}'
    with Store.open(db) as store:
        res = store.load_events("SELECT ?::JSON AS raw, 'x#' || i AS pos FROM range(3) t(i)", [raw],
                                run_id=store.start_run("t"))
        assert res.new == 1
        assert store.con.execute("SELECT count(*) FROM events").fetchone()[0] == 1


def test_stale_staging_files_of_killed_runs_are_removed(tmp_path):
    import os
    import time

    from ingest.loading import remove_stale_staging

    old = tmp_path / "provlens-stage-abc.ndjson"
    fresh = tmp_path / "provlens-stage-def.ndjson"
    foreign = tmp_path / "someone-else.ndjson"
    for f in (old, fresh, foreign):
        f.write_text("{}\n")
    past = time.time() - 7 * 3600
    os.utime(old, (past, past))
    os.utime(foreign, (past, past))
    assert remove_stale_staging(str(tmp_path)) == 1
    assert not old.exists() and fresh.exists() and foreign.exists()
