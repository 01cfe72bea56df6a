"""`python -m ingest migrate`: a store written by an older provlens is upgraded in place; until then the
read-only paths (exports, pages) say how to upgrade it instead of failing obscurely."""

from __future__ import annotations

import duckdb

from ingest import derived, exitcodes
from ingest.schema import CORRELATION_COLUMNS, LATEST_VERSION, MIGRATIONS
from tests.conftest import run_cli


def _store_at_version(path, version: int, skip: tuple[int, ...] = ()) -> None:
    """A database as an older provlens left it: only the migrations up to ``version`` applied (minus ``skip``)."""
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, description VARCHAR, "
                "applied_at TIMESTAMPTZ NOT NULL)")
    for number, description, statements in MIGRATIONS:
        if number > version:
            break
        if number in skip:
            continue
        for sql in statements:
            con.execute(sql)
        con.execute("INSERT INTO schema_version VALUES (?, ?, now())", [number, description])
    con.close()


def _version(path) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("SELECT max(version) FROM schema_version").fetchone()[0]


def test_migrate_upgrades_an_old_store_and_exports_work_after(tmp_path):
    db = tmp_path / "old.duckdb"
    _store_at_version(db, 5)
    assert _version(db) == 5 < LATEST_VERSION

    # Before: the export (read-only) cannot answer and names the command that fixes it.
    before = run_cli("queries", "export", "violations", "--db", str(db), "--out", str(tmp_path / "v.csv"))
    assert before.returncode == exitcodes.DATABASE, before.stderr
    assert "python -m ingest migrate" in before.stderr

    done = run_cli("ingest", "migrate", "--db", str(db))
    assert done.returncode == exitcodes.OK, done.stderr
    assert f"schema version 5 -> {LATEST_VERSION}" in done.stderr
    assert _version(db) == LATEST_VERSION

    after = run_cli("queries", "export", "violations", "--db", str(db), "--out", str(tmp_path / "v.csv"))
    assert after.returncode == exitcodes.OK, after.stderr
    assert (tmp_path / "v.csv").read_text().startswith("kind,")

    again = run_cli("ingest", "migrate", "--db", str(db))
    assert again.returncode == exitcodes.OK and f"already at schema version {LATEST_VERSION}" in again.stderr


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


def test_a_version_missing_below_the_highest_is_applied(tmp_path):
    """Migrations 8 and 9 were written in parallel and 9 landed first: a store written in between has 9 but
    not 8. Versions are applied by set, so the missing one is applied and the violations page works."""
    db = tmp_path / "gap.duckdb"
    _store_at_version(db, 9, skip=(8,))
    done = run_cli("ingest", "migrate", "--db", str(db))
    assert done.returncode == exitcodes.OK, done.stderr
    assert "(applied 8;" in done.stderr or "(applied 8, " in done.stderr  # later migrations follow it
    with duckdb.connect(str(db), read_only=True) as con:
        versions = [r[0] for r in con.execute("SELECT version FROM schema_version ORDER BY version").fetchall()]
    assert versions == [number for number, _, _ in MIGRATIONS]
    after = run_cli("queries", "export", "violations", "--db", str(db), "--out", str(tmp_path / "v.csv"))
    assert after.returncode == exitcodes.OK, after.stderr


def test_migrations_12_to_17_upgrade_a_demo_store_in_place_keeping_its_rows(demo_db, tmp_path):
    """A store from before migrations 12 (index on events.source_id) and 13 (correlation ids with ZSTD), the
    sorted copies of 14-16 and the skipped page's top rows of 17: `ingest migrate` rewrites the correlation with
    the same rows, the ids stored ZSTD, leaves no index on events.source_id (12 adds it, 16 drops it for the
    sorted event copy), and fills the event copy and the top rows as a recomputation does."""
    import shutil

    db = tmp_path / "before-12.duckdb"
    shutil.copy(demo_db, db)
    with duckdb.connect(str(db)) as con:  # as a provlens without migrations 12 and 13 left it
        con.execute("DROP INDEX IF EXISTS events_source_id")
        con.execute("DROP TABLE derived_identity_events")
        con.execute("DROP TABLE derived_skip_top")
        con.execute(f"CREATE TABLE correlation_old ({CORRELATION_COLUMNS})")  # as migration 2 made it
        con.execute("INSERT INTO correlation_old SELECT * FROM correlation")
        con.execute("DROP TABLE correlation")
        con.execute("ALTER TABLE correlation_old RENAME TO correlation")
        con.execute("DELETE FROM schema_version WHERE version >= 12")
        before = con.execute("SELECT * FROM correlation ORDER BY ALL").fetchall()
        compression = ("SELECT DISTINCT compression FROM pragma_storage_info('correlation') "
                       "WHERE column_name = 'event_id' AND segment_type = 'VARCHAR'")
        assert "ZSTD" not in {r[0] for r in con.execute(compression).fetchall()}
    assert len(before) > 100 and _version(db) == 11

    done = run_cli("ingest", "migrate", "--db", str(db))
    assert done.returncode == exitcodes.OK, done.stderr
    assert "applied 12, 13, 14, 15, 16, 17" in done.stderr
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT * FROM correlation ORDER BY ALL").fetchall() == before
        assert {r[0] for r in con.execute(compression).fetchall()} == {"ZSTD"}
        assert con.execute("SELECT count(*) FROM duckdb_indexes() WHERE index_name = 'events_source_id'"
                           ).fetchone()[0] == 0
        copy = f"SELECT {', '.join(derived.IDENTITY_EVENT_COLUMNS)} FROM derived_identity_events"
        assert sorted(con.execute(copy).fetchall(), key=repr) == sorted(
            con.execute(derived.full_select("derived_identity_events")).fetchall(), key=repr)
        top = f"SELECT {', '.join(derived.SKIP_TOP_COLUMNS)} FROM derived_skip_top ORDER BY ALL"
        assert con.execute(top).fetchall() == con.execute(
            f"SELECT * FROM ({derived.full_select('derived_skip_top')}) ORDER BY ALL").fetchall() != []
    assert _version(db) == LATEST_VERSION
