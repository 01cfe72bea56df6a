"""The lake's write side on a local lake (issue 28): ``python -m queries lake`` copies a real demo store so that every
lake table equals the store's table; a re-run writes nothing; after more data lands only the changed days are
rewritten (seen in the Delta log's files per partition) and a deleted row disappears; errors are one line with the
documented exit codes; ``ingest files --lake`` writes through."""

from __future__ import annotations

import shutil

import pytest

from ingest import exitcodes
from tests.conftest import run_cli
from tests.lake_check import (
    TABLES,
    changed_days,
    compare,
    delta,
    duplicate_keys,
    grow,
    lake_main,
    partition_files,
    store_tenant,
)


@pytest.fixture()
def store(demo_db, tmp_path):
    """A private copy of the demo store (tests change it)."""
    db = tmp_path / "store.duckdb"
    shutil.copy(demo_db, db)
    return db


def lake_cli(db, lake, *extra):
    """The command as a user runs it: a process of its own."""
    return run_cli("queries", "lake", "--db", str(db), "--to", str(lake), *extra)


@pytest.fixture()
def lake_args(capsys):
    """``python -m queries lake ARGS`` in this process (faster; same code, same exit codes and stderr)."""
    return lambda *argv: lake_main(capsys, *argv)


@pytest.fixture()
def lake_run(lake_args):
    return lambda db, lake, *extra: lake_args("--db", str(db), "--to", str(lake), *extra)


def versions(lake) -> dict[str, int]:
    return {t: delta(str(lake), t).version() for t in TABLES}


def test_copy_equals_store_rerun_writes_nothing(store, tmp_path):
    lake = tmp_path / "lake"
    tenant = store_tenant(store)
    first = lake_cli(store, lake)
    assert first.returncode == exitcodes.OK, first.stderr
    assert "Traceback" not in first.stderr
    assert compare(store, str(lake), tenant) == {}
    assert duplicate_keys(str(lake), tenant) == {}
    # the summary line names the tenant and the rows written: every row of every table
    import duckdb

    with duckdb.connect(str(store), read_only=True) as con:
        total = sum(con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in TABLES)
    assert f"tenant {tenant}:" in first.stderr and f"{total:,} rows" in first.stderr

    before = versions(lake)
    again = lake_cli(store, lake)
    assert again.returncode == exitcodes.OK, again.stderr
    assert versions(lake) == before  # no data table got a new version
    assert " 0 day(s) rewritten" in again.stderr and " 0 rows" in again.stderr
    assert compare(store, str(lake), tenant) == {}
    assert duplicate_keys(str(lake), tenant) == {}


def test_only_changed_days_are_rewritten(lake_run, store, tmp_path):
    lake = tmp_path / "lake"
    tenant = store_tenant(store)
    before_db = tmp_path / "before.duckdb"
    shutil.copy(store, before_db)
    assert lake_run(store, lake).returncode == exitcodes.OK
    files_before = {t: partition_files(str(lake), t) for t in TABLES}
    ids_before = delta(str(lake), "events").to_pyarrow_table(columns=["id"]).column("id").to_pylist()

    gone = grow(before_db, store, tmp_path)  # more events (one day overlapping, one new), one old event deleted
    out = lake_run(store, lake)
    assert out.returncode == exitcodes.OK, out.stderr
    assert compare(store, str(lake), tenant) == {}
    assert duplicate_keys(str(lake), tenant) == {}

    rewritten_total = 0
    for table in TABLES:
        if table == "preflight_findings":
            continue  # the demo has no preflight runs
        files_after = partition_files(str(lake), table)
        days = {day for (_, day) in files_before[table].keys() | files_after.keys()
                if files_before[table].get((tenant, day)) != files_after.get((tenant, day))}
        expected = changed_days(before_db, store, table)
        assert days == expected, table
        rewritten_total += len(expected)
    assert changed_days(before_db, store, "events")  # the test did change events ...
    assert len(changed_days(before_db, store, "events")) < len({d for _, d in files_before["events"]})  # ... not all
    assert f" {rewritten_total} day(s) rewritten" in out.stderr

    # the deleted event is gone from the lake (it was there before)
    ids = delta(str(lake), "events").to_pyarrow_table(columns=["id"]).column("id").to_pylist()
    assert gone not in ids
    assert gone in ids_before


def test_emptied_day_and_full_copy(lake_run, store, tmp_path):
    """A day the store no longer has is emptied in the lake; --full rewrites every day to the same content."""
    import duckdb

    lake = tmp_path / "lake"
    tenant = store_tenant(store)
    assert lake_run(store, lake).returncode == exitcodes.OK
    with duckdb.connect(str(store)) as con:
        con.execute("SET TimeZone = 'UTC'")
        day = con.execute("SELECT min(CAST(activity_time AS DATE)) FROM events").fetchall()[0][0]
        con.execute("DELETE FROM events WHERE CAST(activity_time AS DATE) = ?", [day])
    out = lake_run(store, lake)
    assert out.returncode == exitcodes.OK and "(1 emptied)" in out.stderr, out.stderr
    assert (tenant, str(day)) not in partition_files(str(lake), "events")
    assert compare(store, str(lake), tenant) == {}

    full = lake_run(store, lake, "--full", "--optimize")
    assert full.returncode == exitcodes.OK, full.stderr
    assert "optimize:" in full.stderr
    assert compare(store, str(lake), tenant) == {}
    assert duplicate_keys(str(lake), tenant) == {}


def test_errors_are_one_line_with_exit_codes(lake_args, store, tmp_path):
    import duckdb

    lake = tmp_path / "lake"
    cases = [
        (("--to", "s3://bucket/lake"), exitcodes.USAGE, "not supported"),
        (("--to", "az://lake/x?sv=2024&sig=SECRETSIG"), exitcodes.USAGE, "must not carry credentials"),
        (("--to", str(lake), "--tenant", "bad tenant/.."), exitcodes.USAGE, "not a valid lake tenant"),
    ]
    for extra, code, words in cases:
        out = lake_args("--db", str(store), *extra)
        assert out.returncode == code, (extra, out.stderr)
        assert words in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert "SECRETSIG" not in out.stderr and "Traceback" not in out.stderr
    missing = lake_args("--db", str(tmp_path / "nope.duckdb"), "--to", str(lake))
    assert missing.returncode == exitcodes.DATABASE and len(missing.stderr.strip().splitlines()) == 1
    foreign = tmp_path / "foreign.duckdb"
    with duckdb.connect(str(foreign)) as con:
        con.execute("CREATE TABLE x (a INTEGER)").fetchall()
    not_ours = lake_args("--db", str(foreign), "--to", str(lake))
    assert not_ours.returncode == exitcodes.DATABASE and "provlens database" in not_ours.stderr, not_ours.stderr
    assert len(not_ours.stderr.strip().splitlines()) == 1

    # a store whose events name two tenants: the tenant must be given
    with duckdb.connect(str(store)) as con:
        con.execute("UPDATE events SET tenant_id = 'other-tenant' WHERE id = (SELECT min(id) FROM events)")
    two = lake_args("--db", str(store), "--to", str(lake))
    assert two.returncode == exitcodes.USAGE and "pass --tenant" in two.stderr, two.stderr
    named = lake_args("--db", str(store), "--to", str(lake), "--tenant", "contoso")
    assert named.returncode == exitcodes.OK, named.stderr
    assert compare(store, str(lake), "contoso") == {}


def test_ingest_files_writes_through(store, tmp_path):
    """`ingest files --lake` copies after loading; a lake that cannot be written is one line and exit 8, and the
    store keeps what it loaded."""
    import duckdb

    from simulator import generate, write
    from tests.conftest import SIM_ARGS, SIM_END

    lake = tmp_path / "lake"
    tenant = store_tenant(store)
    later = write(generate(seed=SIM_ARGS["seed"], users=SIM_ARGS["users"], days=1, end=SIM_END), tmp_path / "w")
    out = run_cli("ingest", "files", "--db", str(store), str(later["events"]), "-q", "--lake", str(lake))
    assert out.returncode == exitcodes.OK, out.stderr
    assert f"lake {lake}: tenant {tenant}" in out.stderr
    assert compare(store, str(lake), tenant) == {}

    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the lake's directory should be")
    with duckdb.connect(str(store), read_only=True) as con:
        runs_before = con.execute("SELECT count(*) FROM ingest_runs").fetchall()[0][0]
    bad = run_cli("ingest", "files", "--db", str(store), str(later["events"]), "-q", "--lake", str(blocked))
    assert bad.returncode == exitcodes.LAKE, bad.stderr
    assert "error:" in bad.stderr and "store's data is kept" in bad.stderr and "Traceback" not in bad.stderr
    with duckdb.connect(str(store), read_only=True) as con:  # the ingest itself was recorded, as a success
        assert con.execute("SELECT count(*) FROM ingest_runs").fetchall()[0][0] == runs_before + 1
        assert con.execute("SELECT outcome FROM ingest_runs ORDER BY run_id DESC LIMIT 1").fetchall()[0][0] == "success"


def test_ingest_run_copies_to_the_lake_of_provlens_toml(store, tmp_path):
    """`ingest run` with a [lake] table in provlens.toml copies after its round (the log says so)."""
    from simulator import generate, write
    from tests.conftest import SIM_ARGS, SIM_END

    lake = tmp_path / "lake"
    later = write(generate(seed=SIM_ARGS["seed"], users=SIM_ARGS["users"], days=1, end=SIM_END), tmp_path / "w")
    config = tmp_path / "provlens.toml"
    config.write_text(f'db = "{store}"\n[[sources]]\ntype = "files"\npaths = ["{later["events"]}"]\n'
                      f'[lake]\nurl = "{lake}"\ntenant = "contoso"\n', encoding="utf-8")
    out = run_cli("ingest", "run", "--config", str(config), "-q")
    assert out.returncode == exitcodes.OK, out.stderr
    assert f"lake {lake}: tenant contoso" in out.stderr
    assert compare(store, str(lake), "contoso") == {}

    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the lake's directory should be")
    failing = run_cli("ingest", "run", "--config", str(config), "-q", "--lake", str(blocked))
    assert failing.returncode == exitcodes.LAKE, failing.stderr
    assert "store's data is kept" in failing.stderr and "Traceback" not in failing.stderr

    config.write_text(config.read_text(encoding="utf-8").replace('[lake]\n', '[lake]\nextra = 1\n')
                      .replace('tenant = "contoso"', 'tenant = 5'), encoding="utf-8")
    import duckdb

    with duckdb.connect(str(store), read_only=True) as con:
        runs = con.execute("SELECT count(*) FROM ingest_runs").fetchall()[0][0]
    bad = run_cli("ingest", "run", "--config", str(config), "-q")
    assert bad.returncode == exitcodes.USAGE and "[lake] tenant must be a string" in bad.stderr, bad.stderr
    bad_url = run_cli("ingest", "files", "--db", str(store), str(later["events"]), "--lake", "s3://b/l")
    assert bad_url.returncode == exitcodes.USAGE and "not supported" in bad_url.stderr, bad_url.stderr
    with duckdb.connect(str(store), read_only=True) as con:  # refused before anything was loaded
        assert con.execute("SELECT count(*) FROM ingest_runs").fetchall()[0][0] == runs


def test_same_tenant_writers_at_once_retry_their_conflicts(demo_db, tmp_path):
    """Three processes copying one store into a new lake at the same time (each a first copy, then two --full
    ones) write the same tenant's days: delta-rs refuses all but one of the concurrent commits (CommitFailedError);
    the copy retries them, and every run ends OK with the lake equal to the store."""
    import os
    import subprocess

    from tests.conftest import PY, ROOT

    lake = tmp_path / "lake"
    code = ("import sys; from ingest.lake.command import copy_db\n"
            "for full in (False, True, True): copy_db(sys.argv[1], sys.argv[2], full=full, quiet=True)")
    procs = [subprocess.Popen([PY, "-c", code, str(demo_db), str(lake)], cwd=ROOT, env=dict(os.environ),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    for proc in procs:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == exitcodes.OK, err
    tenant = store_tenant(demo_db)
    assert compare(demo_db, str(lake), tenant) == {}
    assert duplicate_keys(str(lake), tenant) == {}


def test_a_column_added_by_a_migration_reaches_the_lake(store, tmp_path, monkeypatch):
    """A source table that gains a column (as a migration adds one) gains it in the lake at the next copy, filled
    for every row."""
    import duckdb

    from ingest import schema
    from ingest.dbfile import read_connection
    from ingest.lake.copy import copy_store

    lake = tmp_path / "lake"
    tenant = store_tenant(store)
    with read_connection(str(store)) as con:
        copy_store(con, str(lake), tenant)
    with duckdb.connect(str(store)) as con:
        con.execute("ALTER TABLE events ADD COLUMN lake_test_note VARCHAR").fetchall()
        con.execute("UPDATE events SET lake_test_note = 'note ' || id").fetchall()
    columns, constraints = schema.TABLES["events"]
    monkeypatch.setitem(schema.TABLES, "events", ((*columns, ("lake_test_note", "VARCHAR")), constraints))
    with read_connection(str(store)) as con:
        report = copy_store(con, str(lake), tenant)
    assert report.days["events"] == len({d for _, d in partition_files(str(lake), "events")})  # every day
    assert "lake_test_note" in delta(str(lake), "events").to_pyarrow_table().column_names
    assert compare(store, str(lake), tenant) == {}
