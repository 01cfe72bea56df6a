"""Checks of a lake against stores, with plain DuckDB over the store file and plain delta-rs over the lake (not the
copy's own code): full-row multiset equality per table and tenant, keys without duplicates, and lake_day = the UTC
date of each row's own time. Also helpers that build stores for the lake tests."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pyarrow as pa
from deltalake import DeltaTable

from tests.conftest import SIM_ARGS, SIM_END, run_cli

TABLES = ("events", "scim_requests", "correlation", "sync_job_snapshots", "directory_audits", "ingest_runs",
          "ingest_rejects", "preflight_runs", "preflight_findings")
# The time that dates each row, written here from the schema (not taken from ingest/lake/layout.py).
ROW_TIME = {"events": "activity_time", "scim_requests": "ts",
            "correlation": "coalesce(event_time, request_ts, computed_at)", "sync_job_snapshots": "captured_at",
            "directory_audits": "activity_time", "ingest_runs": "started_at", "ingest_rejects": "rejected_at",
            "preflight_runs": "started_at"}
KEYS = {"events": ("id",), "scim_requests": ("request_id",), "sync_job_snapshots": ("job_id", "captured_at"),
        "directory_audits": ("id",), "ingest_runs": ("run_id",), "preflight_runs": ("run_id",),
        "preflight_findings": ("run_id", "kind", "identity")}


def delta(lake: str, table: str, options: dict | None = None) -> DeltaTable:
    uri = f"{lake.rstrip('/')}/{table}"
    return DeltaTable(uri, storage_options=options or None)


def lake_arrow(lake: str, table: str, tenant: str, options: dict | None = None):
    return delta(lake, table, options).to_pyarrow_table(partitions=[("lake_tenant", "=", tenant)])


def compare(db: str | Path, lake: str, tenant: str, options: dict | None = None) -> dict[str, str]:
    """Per table, what differs between the store ``db`` and ``tenant``'s rows in the lake (empty: all equal)."""
    problems: dict[str, str] = {}
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"ATTACH '{db}' AS s (READ_ONLY)")
    for table in TABLES:
        lake_rows = lake_arrow(lake, table, tenant, options)  # noqa: F841 - read by DuckDB below
        con.register("l", lake_rows)
        cols = [r[0] for r in con.execute(f"DESCRIBE s.{table}").fetchall()]
        sel = ", ".join(f'"{c}"' for c in cols)
        store_n = con.execute(f"SELECT count(*) FROM s.{table}").fetchall()[0][0]
        lake_n = con.execute("SELECT count(*) FROM l").fetchall()[0][0]
        only_store = con.execute(f"SELECT count(*) FROM (SELECT {sel} FROM s.{table} EXCEPT ALL "
                                 f"SELECT {sel} FROM l)").fetchall()[0][0]
        only_lake = con.execute(f"SELECT count(*) FROM (SELECT {sel} FROM l EXCEPT ALL "
                                f"SELECT {sel} FROM s.{table})").fetchall()[0][0]
        if (store_n, only_store, only_lake) != (lake_n, 0, 0):
            problems[table] = (f"store {store_n} rows, lake {lake_n}; {only_store} only in store, "
                               f"{only_lake} only in lake")
        if table in ROW_TIME:
            wrong_day = con.execute(f"SELECT count(*) FROM l WHERE lake_day IS DISTINCT FROM "
                                    f"CAST(({ROW_TIME[table]}) AT TIME ZONE 'UTC' AS DATE)").fetchall()[0][0]
            if wrong_day:
                problems[f"{table}.lake_day"] = f"{wrong_day} rows dated on another day"
        wrong_tenant = con.execute(f"SELECT count(*) FROM l WHERE lake_tenant <> '{tenant}'").fetchall()[0][0]
        if wrong_tenant:
            problems[f"{table}.lake_tenant"] = f"{wrong_tenant} rows of another tenant"
        con.unregister("l")
    return problems


def duplicate_keys(lake: str, tenant: str, options: dict | None = None) -> dict[str, int]:
    """Per keyed table, how many key values ``tenant``'s rows hold more than once."""
    out = {}
    con = duckdb.connect()
    for table, key in KEYS.items():
        con.register("l", lake_arrow(lake, table, tenant, options))
        cols = ", ".join(key)
        dups = con.execute(f"SELECT count(*) FROM (SELECT {cols} FROM l GROUP BY {cols} HAVING count(*) > 1)"
                           ).fetchall()[0][0]
        if dups:
            out[table] = dups
        con.unregister("l")
    return out


def store_tenant(db: str | Path) -> str:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT DISTINCT tenant_id FROM events").fetchall()[0][0]


def partition_files(lake: str, table: str, options: dict | None = None) -> dict[tuple[str, str], frozenset[str]]:
    """(tenant, day) -> the data files the table's current version holds for it."""
    actions = pa.table(delta(lake, table, options).get_add_actions(flatten=True)).to_pylist()
    out: dict[tuple[str, str], set[str]] = {}
    for a in actions:
        out.setdefault((a["partition.lake_tenant"], str(a["partition.lake_day"])), set()).add(a["path"])
    return {k: frozenset(v) for k, v in out.items()}


def changed_days(before_db: str | Path, after_db: str | Path, table: str) -> set[str]:
    """The UTC days whose rows differ between two versions of a store (a reference: plain EXCEPT ALL both ways)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"ATTACH '{before_db}' AS a (READ_ONLY)")
    con.execute(f"ATTACH '{after_db}' AS b (READ_ONLY)")
    if table == "preflight_findings":
        raise ValueError("dated through preflight_runs")
    day = f"CAST(({ROW_TIME[table]}) AT TIME ZONE 'UTC' AS DATE)"
    rows = con.execute(f"SELECT DISTINCT {day} FROM (SELECT * FROM a.{table} EXCEPT ALL SELECT * FROM b.{table} "
                       f"UNION ALL (SELECT * FROM b.{table} EXCEPT ALL SELECT * FROM a.{table}))").fetchall()
    return {str(r[0]) for r in rows}


def lake_main(capsys, *argv: str) -> SimpleNamespace:
    """``python -m queries lake ...`` run in this process: its exit code and what it printed on stderr."""
    from queries.cli import main

    capsys.readouterr()
    code = main(["lake", *argv])
    return SimpleNamespace(returncode=code, stderr=capsys.readouterr().err)


def build_demo(db: Path, seed: int) -> Path:
    """A demo store of the test simulator's size, with ``seed`` (another seed: another tenant)."""
    run_cli("ingest", "demo", "--db", str(db), "--seed", str(seed), "--users", str(SIM_ARGS["users"]),
            "--days", str(SIM_ARGS["days"]), "--end", SIM_END.isoformat(), "-q", check=True)
    return db


def grow(src: Path, dst: Path, workdir: Path) -> str:
    """A copy of the store ``src`` at ``dst`` that then ingested a later simulator window (its last day overlaps
    ``src``'s, a new day follows) with `ingest files`, and then lost its oldest event (whose id is returned)."""
    from simulator import generate, write

    shutil.copy(src, dst)
    later = generate(seed=SIM_ARGS["seed"], users=SIM_ARGS["users"], days=2, end=SIM_END + timedelta(days=1))
    paths = write(later, workdir / f"window-{dst.stem}")
    run_cli("ingest", "files", "--db", str(dst), str(paths["events"]), "-q", check=True)
    with duckdb.connect(str(dst)) as con:
        gone = con.execute("SELECT id FROM events ORDER BY activity_time, id LIMIT 1").fetchall()[0][0]
        con.execute("DELETE FROM events WHERE id = ?", [gone]).fetchall()
    return gone

