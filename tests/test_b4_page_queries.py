"""B4 page-query rewrites (issue 7): each faster shape returns exactly the rows of the plain query it
replaces, on the demo database, for all time and for narrower filters."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from queries.db import read_connection, run
from queries.filters import Filters


def _filter_sets(db: str) -> list[Filters]:
    with read_connection(db) as con:
        first, last = con.execute("SELECT min(activity_time), max(activity_time) FROM events").fetchone()
        sps = [r[0] for r in con.execute("SELECT DISTINCT service_principal_id FROM events ORDER BY 1").fetchall()]
    middle = first + (last - first) / 2
    return [Filters(), Filters(since=middle + timedelta(minutes=7, seconds=3)),
            Filters(until=middle, service_principal_ids=(sps[0],)), Filters(service_principal_ids=(sps[-1],))]


@pytest.fixture(scope="module")
def db(demo_db) -> str:
    return str(demo_db)


def test_unlogged_first_rows_and_count_are_the_full_lists_head_and_length(db):
    for filters in _filter_sets(db):
        full = run(db, "scim_unlogged_requests", filters)
        count = run(db, "scim_unlogged_count", filters)["requests"].iloc[0]
        assert count == len(full)
        for limit in (1, 7, len(full) + 5):
            first = run(db, "scim_unlogged_requests_first", filters, limit=limit)
            pd.testing.assert_frame_equal(first, full.head(limit).reset_index(drop=True))
    assert len(run(db, "scim_unlogged_requests", Filters())) > 7  # the demo has enough rows to cut


# ---------------------------------------------------------------- violations: SCIM evidence from the store's
# error answers and per-key first/last answer (ingest/summaries/scim.py) vs the plain scan of every request.
def _plain_violations_sql() -> str:
    from queries.datasets import _VIOLATIONS_CORE, _VIOLATIONS_SELECT
    from queries.filters import EVENT_FILTER

    return ("WITH " + _VIOLATIONS_CORE + """,
        scim_errors AS (SELECT ts, status, external_id, user_name FROM scim_requests WHERE status IN (400, 409)),
        scim_candidates AS (
            SELECT g.kind, g.service_principal_id, g.source_id, g.first_seen, g.last_seen, s.ts, s.status
            FROM grouped g JOIN scim_errors s ON s.external_id = g.source_id
            UNION ALL
            SELECT g.kind, g.service_principal_id, g.source_id, g.first_seen, g.last_seen, s.ts, s.status
            FROM grouped g JOIN scim_errors s ON lower(s.user_name) = lower(g.user_name)),
        scim_seen AS (
            SELECT DISTINCT kind, service_principal_id, source_id FROM scim_candidates
            WHERE ts BETWEEN first_seen - INTERVAL 15 MINUTE AND last_seen + INTERVAL 15 MINUTE
              AND try_cast(status AS INTEGER) = CASE kind WHEN 'duplicate_user_name' THEN 409 ELSE 400 END)"""
            + _VIOLATIONS_SELECT.format(
                evidence="CASE WHEN EXISTS (SELECT 1 FROM scim_seen x WHERE x.kind = g.kind AND "
                         "x.service_principal_id = g.service_principal_id AND x.source_id = g.source_id) "
                         "THEN 'both' ELSE 'entra' END")).replace("{EVENT_FILTER}", EVENT_FILTER)


def _assert_violations_equal_plain(db: str, filters: Filters, **extra) -> pd.DataFrame:
    from queries.db import run_sql

    got = run(db, "violations", filters, **extra)
    with read_connection(db) as con:
        want = run_sql(con, _plain_violations_sql(), filters.params() | {"allowed_domains": None} | extra)
    pd.testing.assert_frame_equal(got, want)
    return got


def test_violations_evidence_equals_the_plain_scan(db):
    for filters in _filter_sets(db):
        _assert_violations_equal_plain(db, filters)
    got = _assert_violations_equal_plain(db, Filters(), allowed_domains=["contoso.com"])
    assert "both" in set(run(db, "violations", Filters())["evidence"]) and len(got)  # 'entra': the test below


def test_identity_events_reads_the_sorted_copy_and_equals_the_plain_scan(db):
    """identity_events reads derived_identity_events (the events' columns sorted by source id) for
    any filters, and returns exactly what the plain ``source_id = ... AND filters`` scan of events returns."""
    from queries.catalog import QUERIES
    from queries.db import bind, run_sql
    from queries.filters import EVENT_FILTER

    plain = f"""SELECT activity_time AS time, 'entra' AS source, service_principal_name AS app, action, status,
                       coalesce(error_code, skip_category) AS detail, user_name, target_id, cycle_id, id AS ref
                FROM events WHERE source_id = $source_id::VARCHAR AND {EVENT_FILTER} ORDER BY activity_time, id"""
    with read_connection(db) as con:
        ids = [r[0] for r in con.execute(
            "SELECT source_id FROM events GROUP BY source_id ORDER BY count(*) DESC, source_id LIMIT 3").fetchall()]
    compared = 0
    for filters in _filter_sets(db):
        for source_id in [*ids, "no-such-identity"]:
            params = filters.params() | {"source_id": source_id}
            got = run(db, "identity_events", filters, source_id=source_id)
            with read_connection(db) as con:
                want = run_sql(con, plain, params)
                sql = QUERIES["identity_events"].sql
                explained = con.execute("EXPLAIN " + sql, bind(sql, params)).fetchall()[0][1]
            pd.testing.assert_frame_equal(got, want)
            compared += len(got)
            assert ".events" not in explained, explained  # never the events table
            assert "derived_identity_events" in explained or (source_id not in ids and "Empty Result" in explained)
    assert compared > 0


def _add_answers(con, rows: list[tuple[str, object, int, str | None, str | None]]) -> None:
    """Insert SCIM answers (request_id, ts, status, external_id, user_name) as one load batch does:
    the rows, then the derived state folded in the same transaction."""
    from datetime import datetime, timezone

    from ingest.scim import derived

    at = datetime(2030, 1, 1, tzinfo=timezone.utc)
    con.execute("BEGIN")
    for request_id, ts, status, external_id, user_name in rows:
        con.execute("""INSERT INTO scim_requests (request_id, ts, method, path, status, external_id, user_name,
                           user_name_lower, is_probe, first_ingested_at, ingest_run_id)
                       VALUES (?, ?, 'POST', '/Users', ?, ?, ?, lower(?), false, ?, NULL)""",
                    [request_id, ts, status, external_id, user_name, user_name, at])
    derived.add_scim_batch(con, at, None)
    con.execute("COMMIT")


def test_violations_evidence_when_answers_lie_before_and_after_the_window(demo_db, tmp_path):
    """The per-key first/last answer cannot decide a window strictly between them: then the answers are read
    (one group with none inside -> 'entra', one with one inside -> 'both'); tested against the plain scan."""
    import shutil

    import duckdb

    from ingest import summaries

    path = tmp_path / "edge.duckdb"
    shutil.copy(demo_db, path)
    db = str(path)
    both = run(db, "violations", Filters())
    both = both[both["evidence"] == "both"].head(2)
    assert len(both) == 2
    with duckdb.connect(db) as con:
        rows = []
        for i, v in enumerate(both.itertuples()):
            want = 409 if v.kind == "duplicate_user_name" else 400
            con.execute("DELETE FROM scim_requests WHERE status IN (400, 409) AND (external_id = ? OR "
                        "lower(user_name) = lower(?))", [v.source_id, v.user_name])
            rows += [(f"edge-{i}-before", v.first_seen - timedelta(days=1), want, v.source_id, v.user_name),
                     (f"edge-{i}-after", v.last_seen + timedelta(days=1), want, None, v.user_name.upper())]
            if i == 1:  # one answer inside the window, neither the key's first nor its last
                rows.append((f"edge-{i}-inside", v.first_seen, want, v.source_id, None))
        for table in ("derived_scim_error_answers", "derived_scim_error_keys"):  # rebuilt after the deletes
            summaries.build(con, summaries.by_table()[table])  # (the store never deletes requests)
        _add_answers(con, rows)
    got = _assert_violations_equal_plain(db, Filters())
    evidence = dict(zip(got["source_id"] + got["kind"], got["evidence"]))
    first, second = (v.source_id + v.kind for v in both.itertuples())
    assert (evidence[first], evidence[second]) == ("entra", "both")


def test_error_answer_state_folded_batch_by_batch_equals_a_recomputation(sim_dir, tmp_path, monkeypatch):
    import duckdb

    from ingest.scim import ingest as scim_ingest
    from ingest.summaries import scim as decl
    from tests.conftest import run_cli

    db = tmp_path / "batched.duckdb"
    run_cli("ingest", "files", "--db", str(db), "-q", str(sim_dir / "events.ndjson"), check=True)
    monkeypatch.setattr(scim_ingest, "BATCH_LINES", 211)
    scim_ingest.ingest_scim(str(db), [str(sim_dir / "scim-audit.jsonl")], quiet=True, correlate=False)
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(DISTINCT first_ingested_at) FROM scim_requests").fetchone()[0] > 3
        answers = decl.ERROR_ANSWERS_SELECT.format(src="scim_requests")
        for table, select in [("derived_scim_error_answers", answers),
                              ("derived_scim_error_keys", decl.ERROR_KEYS_SELECT.format(src=f"({answers})"))]:
            stored = sorted(con.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
            assert stored == sorted(con.execute(select).fetchall(), key=repr) and stored
