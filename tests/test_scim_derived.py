"""Derived SCIM / correlation state (ingest/scim/derived.py) and the page queries that read it
(queries/scim.py): loaded in many small batches, the summaries equal a recomputation from all rows;
migration 7 backfills an existing store; every rewritten query returns exactly the rows of the plain
SQL over scim_requests / correlation / events, for all-time and ragged windows and an app filter."""

from __future__ import annotations

import shutil
from datetime import timedelta

import duckdb
import pandas as pd
import pytest

from ingest import summaries
from ingest.scim import ingest as scim_ingest
from ingest.store import Store
from queries.catalog import QUERIES
from queries.db import read_connection, run_sql
from queries.reference import SCIM_REFERENCES as REFERENCE
from tests.conftest import run_cli

_TABLES = ["derived_scim_hours", "derived_scim_latency", "derived_scim_error_users", "derived_scim_error_answers",
           "derived_scim_error_keys", "derived_correlation_hours", "derived_scim_unlogged",
           "derived_correlation_contradictions"]


def _derived_rows(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    return {t: sorted(con.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in _TABLES}


def _recomputed(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    """Each SCIM summary's own definition, run over the whole trail."""
    by_table = summaries.by_table()
    return {t: sorted(con.execute(by_table[t].build_sql()).fetchall(), key=repr) for t in _derived_rows(con)}


@pytest.fixture(scope="module")
def batched_db(sim_dir, tmp_path_factory, monkeypatch_module):
    """Events, then the SCIM trail in many small batches (each folds its rows into the summaries)."""
    db = tmp_path_factory.mktemp("scimderived") / "b.duckdb"
    run_cli("ingest", "files", "--db", str(db), "-q", str(sim_dir / "events.ndjson"), check=True)
    monkeypatch_module.setattr(scim_ingest, "BATCH_LINES", 97)
    scim_ingest.ingest_scim(str(db), [str(sim_dir / "scim-audit.jsonl")], quiet=True, correlate=True)
    return db


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_batched_loads_equal_a_recomputation(batched_db, sim):
    with duckdb.connect(str(batched_db), read_only=True) as con:
        batches = con.execute("SELECT count(DISTINCT first_ingested_at) FROM scim_requests").fetchone()[0]
        assert batches > 3  # really folded in many steps
        assert con.execute("SELECT sum(requests) FROM derived_scim_hours").fetchone()[0] == len(sim.scim_records)
        assert _derived_rows(con) == _recomputed(con)


def test_reloading_the_same_trail_changes_nothing(batched_db, sim_dir, tmp_path):
    db = tmp_path / "again.duckdb"
    shutil.copy(batched_db, db)
    with duckdb.connect(str(db), read_only=True) as con:
        before = _derived_rows(con)
    scim_ingest.ingest_scim(str(db), [str(sim_dir / "scim-audit.jsonl")], quiet=True, correlate=True)
    with duckdb.connect(str(db), read_only=True) as con:
        assert _derived_rows(con) == before


def test_summaries_missing_from_a_store_are_rebuilt_when_it_opens(batched_db, tmp_path):
    db = tmp_path / "old.duckdb"
    shutil.copy(batched_db, db)
    with duckdb.connect(str(db)) as con:  # as a store whose SCIM summaries another provlens never built
        for table in _derived_rows(con):
            con.execute(f"DROP TABLE {table}")
    with Store.open(str(db)) as store:
        assert set(_TABLES) <= set(store.summaries_rebuilt)
    with duckdb.connect(str(db), read_only=True) as con:
        assert _derived_rows(con) == _recomputed(con)
        assert con.execute("SELECT count(*) FROM derived_scim_unlogged").fetchone()[0] > 0


def _windows(con: duckdb.DuckDBPyConnection) -> list[dict]:
    first, last = con.execute("SELECT min(ts), max(ts) FROM scim_requests").fetchone()
    sps = [r[0] for r in con.execute("SELECT DISTINCT service_principal_id FROM events ORDER BY 1").fetchall()]
    ragged_from = first + (last - first) / 3 + timedelta(minutes=17, seconds=3, microseconds=5)
    whole_hour = (first + (last - first) / 2).replace(minute=0, second=0, microsecond=0)
    return [{"since": None, "until": None, "sps": None},
            {"since": ragged_from, "until": ragged_from + timedelta(days=2, minutes=41), "sps": None},
            {"since": whole_hour, "until": None, "sps": [sps[0]]},
            {"since": None, "until": whole_hour, "sps": [sps[-1]]}]


def test_rewritten_queries_return_the_plain_sql_rows(batched_db):
    db = str(batched_db)
    with read_connection(db) as con:
        windows = _windows(con)
        user, source_id = con.execute(
            "SELECT any_value(r.user_name), e.source_id FROM correlation c JOIN events e ON e.id = c.event_id "
            "JOIN scim_requests r ON r.request_id = c.request_id WHERE c.match_key = 'user_name' "
            "GROUP BY e.source_id ORDER BY count(*) DESC, e.source_id LIMIT 1").fetchone()
        resource_id = con.execute("SELECT resource_id FROM scim_requests WHERE resource_id IS NOT NULL "
                                  "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1").fetchone()[0]
    checked = 0
    for name, reference in REFERENCE.items():
        buckets = ["hour", "day", "minute"] if name == "scim_requests_over_time" else ["hour"]
        identities = [user.upper(), resource_id] if name == "scim_identity_timeline" else [None]
        for window in windows:
            for bucket in buckets:
                for identity in identities:
                    params = window | {"job": None, "bucket": bucket, "identity": identity, "source_id": source_id}
                    with read_connection(db) as con:
                        expected = run_sql(con, reference, params)
                        got = run_sql(con, QUERIES[name].sql, params)
                    assert list(got.columns) == list(expected.columns), name
                    assert list(got.dtypes) == list(expected.dtypes), name
                    # rows in the same order, up to ties of the ORDER BY (both sorted by every column)
                    got, expected = (f.sort_values(list(f.columns)).reset_index(drop=True) for f in (got, expected))
                    pd.testing.assert_frame_equal(got, expected, check_exact=True, obj=f"{name} {params}")
                    checked += len(expected)
    assert checked > 1000  # the comparisons saw real rows, not empty frames
