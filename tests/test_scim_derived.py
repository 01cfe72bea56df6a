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
from tests.conftest import run_cli

_SCIM_TIME = ("ts >= coalesce($since::TIMESTAMPTZ, '-infinity'::TIMESTAMPTZ) "
              "AND ts < coalesce($until::TIMESTAMPTZ, 'infinity'::TIMESTAMPTZ)")
_CORR = ("coalesce(event_time, request_ts) >= coalesce($since::TIMESTAMPTZ, '-infinity'::TIMESTAMPTZ) "
         "AND coalesce(event_time, request_ts) < coalesce($until::TIMESTAMPTZ, 'infinity'::TIMESTAMPTZ) "
         "AND ($sps::VARCHAR[] IS NULL OR service_principal_id IS NULL "
         "OR list_contains($sps::VARCHAR[], service_principal_id))")
_C = _CORR.replace("event_time", "c.event_time").replace("request_ts", "c.request_ts").replace(
    "service_principal_id", "c.service_principal_id")
_R = _SCIM_TIME.replace("ts", "r.ts")

# The straightforward SQL of each rewritten query (what it computed before the derived state existed).
REFERENCE = {
    "scim_kpis": f"""
        SELECT count(*) AS requests, count(*) FILTER (WHERE status >= 400) AS errors,
               count(*) FILTER (WHERE status IN (401, 403)) AS auth_failures,
               count(*) FILTER (WHERE is_probe) AS probes, count(*) FILTER (WHERE status = 429) AS throttled,
               quantile_cont(duration_ms, 0.95) AS p95_ms,
               count(DISTINCT coalesce(credential_id, user_agent, client_ip)) AS clients,
               min(ts) AS first_request, max(ts) AS last_request
        FROM scim_requests WHERE {_SCIM_TIME}""",
    "scim_requests_over_time": f"""
        SELECT date_trunc(coalesce($bucket::VARCHAR, 'hour'), ts) AS bucket, operation, status,
               (status // 100)::VARCHAR || 'xx' AS status_class, count(*) AS requests
        FROM scim_requests WHERE {_SCIM_TIME} GROUP BY ALL ORDER BY bucket, operation, status""",
    "scim_latency": f"""
        SELECT operation, count(*) AS requests,
               quantile_cont(duration_ms, 0.5) AS p50_ms, quantile_cont(duration_ms, 0.95) AS p95_ms,
               quantile_cont(duration_ms, 0.99) AS p99_ms, max(duration_ms) AS max_ms
        FROM scim_requests WHERE duration_ms IS NOT NULL AND {_SCIM_TIME}
        GROUP BY operation ORDER BY requests DESC, operation""",
    "scim_errors_by_type": f"""
        SELECT status, coalesce(scim_type, '(none)') AS scim_type, count(*) AS requests,
               count(DISTINCT user_name_lower) AS user_names, mode(error_detail) AS example_detail,
               min(ts) AS first_seen, max(ts) AS last_seen
        FROM scim_requests WHERE status >= 400 AND {_SCIM_TIME}
        GROUP BY ALL ORDER BY requests DESC, status, scim_type""",
    "scim_auth_failures": f"""
        SELECT date_trunc('day', ts) AS day, status, credential_id, user_agent, client_ip, count(*) AS requests,
               min(ts) AS first_seen, max(ts) AS last_seen, mode(error_detail) AS example_detail
        FROM scim_requests WHERE status IN (401, 403) AND {_SCIM_TIME}
        GROUP BY ALL ORDER BY day, requests DESC""",
    "scim_probes": f"""
        SELECT date_trunc('day', ts) AS day, status, count(*) AS probes, tenant
        FROM scim_requests WHERE is_probe AND {_SCIM_TIME} GROUP BY ALL ORDER BY day, status, tenant""",
    "correlation_class_counts": f"""
        SELECT match_class, coalesce(detail, '') AS detail, bool_or(suspicious) AS suspicious, count(*) AS rows
        FROM correlation WHERE {_CORR} GROUP BY ALL ORDER BY match_class, detail""",
    "scim_unlogged_requests": f"""
        SELECT r.ts, r.request_id, c.detail, r.method, r.path, r.status, r.operation, r.user_name, r.resource_id,
               r.client_ip, r.user_agent, r.credential_id, r.tenant
        FROM correlation c JOIN scim_requests r ON r.request_id = c.request_id
        WHERE c.match_class = 'scim_only' AND c.detail <> 'probe' AND {_CORR.replace('request_ts', 'c.request_ts')}
        ORDER BY c.suspicious DESC, r.ts, r.request_id""",
    "correlation_contradictions": f"""
        SELECT c.event_time, c.detail, c.event_id, e.action, e.status AS event_status, e.error_code,
               c.request_id, r.method, r.path, r.status AS request_status, r.scim_type, r.error_detail,
               coalesce(r.user_name, e.user_name) AS user_name, c.service_principal_id
        FROM correlation c JOIN events e ON e.id = c.event_id JOIN scim_requests r ON r.request_id = c.request_id
        WHERE c.match_class = 'contradiction' AND {_C} ORDER BY c.event_time, c.event_id""",
    "scim_identity_timeline": f"""
        SELECT r.ts, r.request_id, r.method, r.path, r.status, r.operation, r.user_name, r.resource_id,
               r.external_id, r.scim_type, r.error_detail, c.match_class, c.detail, c.event_id
        FROM scim_requests r LEFT JOIN correlation c ON c.request_id = r.request_id
        WHERE (r.user_name_lower = lower($identity::VARCHAR) OR r.resource_id = $identity::VARCHAR
               OR r.external_id = $identity::VARCHAR) AND {_R}
        ORDER BY r.ts, r.request_id""",
    "identity_scim_requests": f"""
        WITH ev AS (SELECT id, target_id, lower(user_name) AS user_name_lower FROM events
                    WHERE source_id = $source_id::VARCHAR)
        SELECT r.ts AS time, 'scim' AS source, r.tenant AS app, r.operation AS action,
               CASE WHEN r.status >= 400 THEN 'failure' ELSE 'success' END AS status,
               r.method || ' ' || r.status::VARCHAR || coalesce(' ' || r.scim_type, '')
                   || coalesce(': ' || r.error_detail, '') AS detail,
               r.user_name, r.resource_id AS target_id, NULL::VARCHAR AS cycle_id, r.request_id AS ref
        FROM scim_requests r
        WHERE (r.external_id = $source_id::VARCHAR
               OR r.resource_id IN (SELECT target_id FROM ev WHERE target_id IS NOT NULL)
               OR r.user_name_lower IN (SELECT user_name_lower FROM ev WHERE user_name_lower IS NOT NULL)
               OR r.request_id IN (SELECT request_id FROM correlation
                                   WHERE event_id IN (SELECT id FROM ev) AND request_id IS NOT NULL))
          AND NOT r.is_probe AND {_R}
        ORDER BY r.ts, r.request_id""",
}


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
