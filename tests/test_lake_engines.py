"""Every dataset over the lake gives the store's rows: two tenants' stores (the demo store and a second simulated
tenant) copied into one lake on Azurite by two processes at once, then each dataset answered by Spark (local[2],
reading az:// through the Python data source), by DuckDB over the lake and by each store alone (its own export,
one tenant by construction). Also a local lake read by Spark's native Parquet reader (a store with preflight runs,
so the preflight dataset has rows), filtered exports written by the lake engines (the same bytes as the store's),
and the CLI's one-line errors.

Rows are compared sorted, with types normalised (timestamps as UTC microseconds, decimals and doubles rounded
alike, lists as tuples); the store's side is the store's export, never the lake code's output.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingest.lake.copy import copy_store
from queries.datasets import DATASETS
from queries.db import bind
from queries.export import export
from queries.filters import Filters
from queries.lake_export import export_lake
from queries.lake_read import lake_connection
from queries.lake_sql import LakeSQLError, dataset_sql, spark_sql, tables_read
from queries.spark_engine import register_lake, run_dataset, spark_session, stop_session
from tests.azurite import ACCOUNT, KEY, running_azurite
from tests.conftest import PY, ROOT, SIM_END, run_cli
from tests.test_preflight_check import store  # noqa: F401 - the preflight store fixture (runs, findings, events)

TENANTS = ("contoso", "fabrikam")
LAKE = "az://lake/provisioning"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# Datasets that must have rows on the demo tenants (else the comparison would prove little).
NON_EMPTY = ("events", "failures", "skipped", "cycles", "sync-jobs", "ingest-runs", "scim-requests", "correlation",
             "violations", "recurring-failures")
TIMINGS: dict[str, float] = {}


def normalised(value):
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return (moment - EPOCH) // timedelta(microseconds=1)
    if isinstance(value, Decimal | float):
        return round(float(value), 6)
    if isinstance(value, list | tuple):
        return tuple(normalised(v) for v in value)
    return value


def rows(table) -> list[tuple]:
    """An Arrow table's rows, normalised and sorted (NULLs first in each column)."""
    out = [tuple(normalised(v) for v in row.values()) for row in table.to_pylist()]
    return sorted(out, key=lambda r: tuple((v is not None, v if v is not None else 0) for v in r))


def store_rows(db: Path, name: str, out: Path, filters: Filters | None = None):
    """The dataset as the store exports it (Parquet: exact values)."""
    path = out / f"{name}.parquet"
    export(str(db), name, str(path), filters=filters, fmt="parquet")
    return pq.read_table(path)


def duckdb_lake_rows(con: duckdb.DuckDBPyConnection, name: str, params: dict):
    sql = dataset_sql(name)
    return con.execute(sql, bind(sql, params)).to_arrow_table()


@pytest.fixture(scope="module")
def second_db(tmp_path_factory) -> Path:
    """A second tenant: the simulator with another seed, fewer users and days."""
    db = tmp_path_factory.mktemp("second") / "second.duckdb"
    run_cli("ingest", "demo", "--db", str(db), "--seed", "23", "--users", "30", "--days", "3",
            "--end", SIM_END.isoformat(), "-q", check=True)
    return db


@pytest.fixture(scope="module")
def azure_lake(tmp_path_factory, demo_db, second_db):
    """Both stores copied into one lake on Azurite by two processes at once (ingest.lake.copy.copy_store); the
    Azure variables stay set for the module, so Spark's Python workers read Azurite too."""
    with running_azurite(tmp_path_factory.mktemp("azurite")) as az, pytest.MonkeyPatch.context() as mp:
        az.service().create_container("lake")
        env = {"AZURE_STORAGE_USE_EMULATOR": "true", "AZURITE_BLOB_STORAGE_URL": az.url,
               "AZURE_STORAGE_ACCOUNT_NAME": ACCOUNT, "AZURE_STORAGE_ACCOUNT_KEY": KEY}
        for key, value in env.items():
            mp.setenv(key, value)
        code = ("import sys, duckdb; from ingest.lake.copy import copy_store; "
                "con = duckdb.connect(sys.argv[1], read_only=True); copy_store(con, sys.argv[2], sys.argv[3])")
        procs = [subprocess.Popen([PY, "-c", code, str(db), LAKE, tenant], cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
                 for db, tenant in ((demo_db, TENANTS[0]), (second_db, TENANTS[1]))]
        for proc in procs:
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err
        yield {TENANTS[0]: demo_db, TENANTS[1]: second_db}


@pytest.fixture(scope="module")
def spark(azure_lake):
    started = time.monotonic()
    session = spark_session("local[2]")
    TIMINGS["spark startup"] = time.monotonic() - started
    yield session
    stop_session(session)
    print("\nlake engine timings (s):", {k: round(v, 2) for k, v in TIMINGS.items()}, file=sys.stderr)


def test_every_dataset_is_the_same_on_spark_duckdb_over_the_lake_and_each_store(azure_lake, spark, tmp_path):
    params = Filters().params()
    for tenant, db in azure_lake.items():
        register_lake(spark, LAKE, [tenant], cache=True)
        con = lake_connection(LAKE, [tenant])
        for name, dataset in DATASETS.items():
            want = store_rows(db, name, tmp_path)
            started = time.monotonic()
            on_spark = run_dataset(spark, name, params)
            TIMINGS[f"spark {name} ({tenant})"] = time.monotonic() - started
            started = time.monotonic()
            on_duckdb = duckdb_lake_rows(con, name, params)
            TIMINGS[f"duckdb-lake {name} ({tenant})"] = time.monotonic() - started
            for got in (on_spark, on_duckdb):
                assert tuple(got.column_names) == dataset.columns, name
            assert rows(on_spark) == rows(want), f"{name}: Spark over the lake differs from the {tenant} store"
            assert rows(on_duckdb) == rows(want), f"{name}: DuckDB over the lake differs from the {tenant} store"
            if name in NON_EMPTY and tenant == TENANTS[0]:
                assert want.num_rows > 0, name
        con.close()


def test_both_tenants_at_once_are_the_union_of_the_stores(azure_lake, spark, tmp_path):
    register_lake(spark, LAKE, None, cache=True)
    for name in ("events", "scim-requests"):
        per_store = []
        for tenant, db in azure_lake.items():
            (tmp_path / tenant).mkdir(exist_ok=True)
            per_store.append(store_rows(db, name, tmp_path / tenant))
        assert all(t.num_rows > 0 for t in per_store), name
        union = per_store[0].to_pylist() + per_store[1].to_pylist()
        assert rows(run_dataset(spark, name, Filters().params())) == rows(pa.Table.from_pylist(union)), name


FILTERED = [
    ("failures", Filters(since=datetime(2026, 10, 28, tzinfo=timezone.utc),
                         until=datetime(2026, 10, 30, 12, tzinfo=timezone.utc))),
    ("events", Filters(since=datetime(2026, 10, 29, 6, tzinfo=timezone.utc), statuses=("failure", "skipped"))),
    ("cycles", Filters(until=datetime(2026, 10, 30, tzinfo=timezone.utc))),
    ("recurring-failures", Filters(until=datetime(2026, 10, 31, tzinfo=timezone.utc))),
    ("violations", Filters(since=datetime(2026, 10, 27, tzinfo=timezone.utc))),
]


@pytest.mark.parametrize("engine", ["spark", "duckdb"])
def test_filtered_exports_write_the_stores_bytes(azure_lake, spark, tmp_path, engine):
    db = azure_lake[TENANTS[0]]
    one_app = duckdb.connect(str(db), read_only=True).execute(
        "SELECT service_principal_id FROM events GROUP BY 1 ORDER BY count(*) DESC LIMIT 1").fetchone()[0]
    cases = [*FILTERED, ("skipped", Filters(service_principal_ids=(one_app,)))]
    register_lake(spark, LAKE, [TENANTS[0]], cache=True)  # once for every case (the CLI registers per export)
    for name, filters in cases:
        store_file, lake_file = tmp_path / f"{name}-store.csv", tmp_path / f"{name}-{engine}.csv"
        want = export(str(db), name, str(store_file), filters=filters)
        got = export_lake(LAKE, name, str(lake_file), engine=engine, tenants=[TENANTS[0]], filters=filters,
                          spark=spark, registered=True)
        assert lake_file.read_bytes() == store_file.read_bytes(), name
        assert got.rows == want.rows and got.manifest["filters"] == want.manifest["filters"], name
        assert got.manifest["newest_activity_time"] == want.manifest["newest_activity_time"], name
        assert got.manifest["last_successful_ingest"] == want.manifest["last_successful_ingest"], name
        assert got.manifest["source"] == {"engine": engine, "lake": LAKE, "tenants": [TENANTS[0]]}
    unfiltered = export(str(db), "failures", str(tmp_path / "all.csv")).rows
    assert 0 < export(str(db), "failures", str(tmp_path / "f.csv"), filters=FILTERED[0][1]).rows < unfiltered


def test_a_local_lake_through_sparks_parquet_reader(store, demo_db, spark, tmp_path):  # noqa: F811
    """A local lake (the preflight store and the demo store as two tenants): Spark reads the Delta snapshot's
    Parquet files itself; every dataset equals the preflight store's export, the preflight dataset included."""
    lake = str(tmp_path / "lake")
    for tenant, db in (("preflight", store["db"]), ("demo", demo_db)):
        con = duckdb.connect(str(db), read_only=True)
        copy_store(con, lake, tenant)
        con.close()
    register_lake(spark, lake, ["preflight"])
    assert all(f.endswith(".parquet") and "lake_tenant=preflight" in f for f in spark.table("events").inputFiles())
    params = Filters().params()
    for name in DATASETS:
        want = store_rows(Path(store["db"]), name, tmp_path)
        assert rows(run_dataset(spark, name, params)) == rows(want), name
        if name in ("preflight", "events"):
            assert want.num_rows > 0, name


def _cli(*args: str, env: dict | None = None, prelude: str = "") -> subprocess.CompletedProcess:
    code = f"import sys; {prelude}from queries.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([PY, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def test_the_cli_exports_over_the_lake_and_says_what_is_wrong_in_one_line(azure_lake, tmp_path):
    out = tmp_path / "cycles.csv"
    ok = _cli("export", "cycles", "--engine", "duckdb", "--lake", LAKE, "--tenant", TENANTS[1], "--out", str(out))
    assert ok.returncode == 0, ok.stderr
    assert export(str(azure_lake[TENANTS[1]]), "cycles", str(tmp_path / "s.csv")).rows > 0
    assert out.read_bytes() == (tmp_path / "s.csv").read_bytes()
    cases = [
        (["--engine", "duckdb", "--lake", LAKE, "--tenant", "nobody"], {}, "", 2, "tenant nobody is not in the lake"),
        (["--engine", "spark"], {"PROVLENS_LAKE": ""}, "", 2, "needs --lake"),
        (["--engine", "duckdb", "--lake", str(tmp_path / "none")], {}, "", 1, "cannot read the lake"),
        (["--engine", "spark", "--lake", LAKE], {}, "sys.modules['pyspark'] = None; ", 1,
         "pip install 'provlens[spark]'"),
        (["--engine", "spark", "--lake", LAKE], {"PATH": "/nonexistent", "JAVA_HOME": ""}, "", 1, "needs Java"),
        (["--lake", LAKE], {}, "", 2, "need --engine duckdb or --engine spark"),
    ]
    for args, env, prelude, code, message in cases:
        result = _cli("export", "events", *args, "--out", str(tmp_path / "x.csv"), env=env, prelude=prelude)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == code and len(lines) == 1 and message in lines[0], (args, result.stderr)
        assert not (tmp_path / "x.csv").exists()


def test_a_dataset_without_a_reference_must_read_only_lake_tables(monkeypatch):
    """The choice of SQL: a named query over the store's summaries (cycles reads derived_cycles) is refused when
    no reference query stands in for it; one over lake tables only (sync-jobs) is used as it is."""
    from queries import lake_sql
    from queries.catalog import QUERIES

    assert "derived_cycles" in tables_read(QUERIES["cycles"].sql)
    monkeypatch.setattr(lake_sql, "REFERENCES", {k: v for k, v in lake_sql.REFERENCES.items() if k != "cycles"})
    with pytest.raises(LakeSQLError, match="derived_cycles"):
        dataset_sql("cycles")
    assert dataset_sql("sync-jobs") == QUERIES["sync-jobs"].sql
    with pytest.raises(LakeSQLError, match="unknown dataset"):
        dataset_sql("nope")


def test_parameters_become_typed_spark_literals():
    since = datetime(2026, 10, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))  # 00:00 UTC
    sql = spark_sql("events", Filters(since=since, service_principal_ids=("sp-1", "sp'2")).params())
    assert "$" not in sql and "infinity" not in sql
    assert "CAST('2026-10-01 00:00:00.000000' AS TIMESTAMP)" in sql
    assert "ARRAY('sp-1', 'sp\\'2')" in sql
