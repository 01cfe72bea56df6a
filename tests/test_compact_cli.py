"""`python -m ingest compact`: a compacted copy holds exactly the store's rows, schema and compression in
fewer bytes, never touches the store itself, and refuses what it must not do."""

from __future__ import annotations

import gzip
import shutil

import duckdb

from ingest import exitcodes
from ingest.schema import LATEST_VERSION
from tests.conftest import run_cli
from tests.test_migrate_cli import OLD_STORE


def _bloated_copy(demo_db, tmp_path) -> str:
    """The demo store plus blocks a big change freed (as a table rewrite by a migration leaves them)."""
    src = str(tmp_path / "store.duckdb")
    shutil.copy(demo_db, src)
    with duckdb.connect(src) as con:
        con.execute("CREATE TABLE scratch AS SELECT md5(i::VARCHAR) || md5((i * 7)::VARCHAR) AS s "
                    "FROM range(400000) t(i)")  # ~25 MB that compresses poorly
        con.execute("CHECKPOINT")
        con.execute("CREATE TABLE later AS SELECT md5(i::VARCHAR) AS s FROM range(100000) t(i)")  # after it:
        # the freed blocks are inside the file, which cannot just be cut short
        con.execute("CHECKPOINT")
        con.execute("DROP TABLE scratch")
        con.execute("CHECKPOINT")
    return src


def _tables(con, database: str) -> list[str]:
    return [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = ? "
                                      "ORDER BY table_name", [database]).fetchall()]


def test_compact_writes_the_same_rows_in_fewer_bytes_and_leaves_the_store_alone(demo_db, tmp_path, truth):
    src = _bloated_copy(demo_db, tmp_path)
    out = str(tmp_path / "compacted.duckdb")
    src_bytes = open(src, "rb").read()

    done = run_cli("ingest", "compact", "--db", src, "--out", out)
    assert done.returncode == exitcodes.OK, done.stderr
    assert open(src, "rb").read() == src_bytes  # the store was only read
    assert len(open(out, "rb").read()) < 0.8 * len(src_bytes)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compacted.duckdb", "store.duckdb"]  # no leftovers

    con = duckdb.connect()
    con.execute(f"ATTACH '{src}' AS a (READ_ONLY)")
    con.execute(f"ATTACH '{out}' AS b (READ_ONLY)")
    tables = _tables(con, "a")
    assert tables == _tables(con, "b") and "events" in tables and "scim_requests" in tables
    for table in tables:
        total = con.execute(f"SELECT count(*) FROM a.{table}").fetchone()[0]
        missing = con.execute(f"SELECT count(*) FROM (FROM a.{table} EXCEPT ALL FROM b.{table})").fetchone()[0]
        extra = con.execute(f"SELECT count(*) FROM (FROM b.{table} EXCEPT ALL FROM a.{table})").fetchone()[0]
        assert (missing, extra) == (0, 0), f"{table}: {missing} missing, {extra} extra of {total}"
    assert con.execute("SELECT count(*) FROM b.events").fetchone()[0] == truth["events"]["total"]
    for what in ("duckdb_indexes()", "duckdb_constraints()", "duckdb_sequences()"):
        assert (con.execute(f"SELECT count(*) FROM {what} WHERE database_name = 'a'").fetchone()
                == con.execute(f"SELECT count(*) FROM {what} WHERE database_name = 'b'").fetchone())
    # events.raw keeps migration 9's ZSTD compression in the copy
    assert "compression zstd" in con.execute(
        "SELECT lower(sql) FROM duckdb_tables() WHERE database_name = 'b' AND table_name = 'events'").fetchone()[0]
    con.close()

    # the copy is a working store: nothing to migrate, an export reads the same bytes from it, and the SCIM
    # timeline (the sorted SCIM copy joined to correlation_requests by request id) gives the same rows
    from queries.db import run
    from queries.filters import Filters

    with duckdb.connect(src, read_only=True) as con:
        names = [r[0] for r in con.execute("SELECT DISTINCT user_name FROM scim_requests WHERE user_name IS NOT NULL "
                                           "ORDER BY user_name LIMIT 5").fetchall()]
    assert len(names) == 5
    for identity in names:
        timeline = run(src, "scim_identity_timeline", Filters(), identity=identity)
        assert not timeline.empty and timeline["match_class"].notna().any()
        assert timeline.equals(run(out, "scim_identity_timeline", Filters(), identity=identity))
    again = run_cli("ingest", "migrate", "--db", out)
    assert again.returncode == exitcodes.OK and f"already at schema version {LATEST_VERSION}" in again.stderr
    for db, name in ((src, "a.csv"), (out, "b.csv")):
        run_cli("queries", "export", "events", "--db", db, "--out", str(tmp_path / name), check=True)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_compact_refuses_an_existing_output_a_foreign_file_and_a_missing_one_and_keeps_old_versions(
        demo_db, tmp_path):
    src = str(tmp_path / "store.duckdb")
    shutil.copy(demo_db, src)
    taken = tmp_path / "taken.duckdb"
    taken.write_bytes(b"keep me")
    refused = run_cli("ingest", "compact", "--db", src, "--out", str(taken))
    assert refused.returncode == exitcodes.USAGE and "already exists" in refused.stderr
    assert taken.read_bytes() == b"keep me"

    onto_itself = run_cli("ingest", "compact", "--db", src, "--out", src)
    assert onto_itself.returncode == exitcodes.USAGE and "new file" in onto_itself.stderr

    foreign = tmp_path / "foreign.duckdb"
    duckdb.connect(str(foreign)).execute("CREATE TABLE t AS SELECT 1 AS x").close()
    refused = run_cli("ingest", "compact", "--db", str(foreign), "--out", str(tmp_path / "x.duckdb"))
    assert refused.returncode == exitcodes.DATABASE and "not a provlens database" in refused.stderr
    assert not (tmp_path / "x.duckdb").exists()

    old = tmp_path / "old.duckdb"  # an older store is copied as it is (migrate before or after)
    with gzip.open(OLD_STORE) as gz, open(old, "wb") as out:
        shutil.copyfileobj(gz, out)
    done = run_cli("ingest", "compact", "--db", str(old), "--out", str(tmp_path / "old-compacted.duckdb"))
    assert done.returncode == exitcodes.OK, done.stderr
    with duckdb.connect(str(tmp_path / "old-compacted.duckdb"), read_only=True) as con:
        assert con.execute("SELECT max(version) FROM schema_version").fetchone()[0] == 18

    missing = run_cli("ingest", "compact", "--db", str(tmp_path / "nope.duckdb"), "--out", str(tmp_path / "y.duckdb"))
    assert missing.returncode == exitcodes.USAGE and "does not exist" in missing.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign.duckdb", "old-compacted.duckdb", "old.duckdb",
                                                          "store.duckdb", "taken.duckdb"]
