"""scim_identity_timeline reads one identity's requests from ``derived_scim_requests_by_user`` (sorted by userName)
and their correlation result from ``correlation_requests`` (keyed by request id, sorted by userName, written by the
correlation rebuild) instead of joining ``correlation`` on the whole text request_id column (issue 7 B4). The rows
must not change: the query gives what the old, straightforward SQL gives, on the demo store, after the sorted copy
or the results table were rebuilt by another definition, and after a correlation."""

from __future__ import annotations

import shutil
from datetime import timedelta

import duckdb

from ingest import exitcodes
from queries.db import read_connection, run, run_sql
from queries.filters import Filters
from tests.conftest import run_cli

# The query as it was before migration 10 (the reference): the identity's requests LEFT JOIN correlation on
# the text request_id.
REFERENCE = """
    WITH r AS (
        SELECT * FROM scim_requests
        WHERE user_name_lower = lower($identity::VARCHAR) OR resource_id = $identity::VARCHAR
           OR external_id = $identity::VARCHAR)
    SELECT r.ts, r.request_id, r.method, r.path, r.status, r.operation, r.user_name, r.resource_id,
           r.external_id, r.scim_type, r.error_detail, c.match_class, c.detail, c.event_id
    FROM r LEFT JOIN correlation c ON c.request_id = r.request_id
    WHERE r.ts >= coalesce($since::TIMESTAMPTZ, '-infinity'::TIMESTAMPTZ)
      AND r.ts < coalesce($until::TIMESTAMPTZ, 'infinity'::TIMESTAMPTZ)
    ORDER BY r.ts, r.request_id"""

# Each request's result as the timeline reads it, against correlation joined to the requests on the text id.
BY_KEY = "SELECT user_name_lower, request_id, match_class, detail, event_id FROM correlation_requests"
BY_TEXT_ID = """SELECT r.user_name_lower, r.request_id, c.match_class, c.detail, c.event_id
                FROM correlation c JOIN scim_requests r ON r.request_id = c.request_id"""


def _identities(db) -> list[str]:
    """userNames (some upper-cased: the lookup is case-insensitive), resource ids and externalIds of requests
    in each correlation class, and one nobody has."""
    with duckdb.connect(str(db), read_only=True) as con:
        picks = con.execute("""
            SELECT DISTINCT k FROM (
                SELECT c.match_class, unnest([r.user_name, upper(r.user_name), r.resource_id, r.external_id]) AS k
                FROM scim_requests r JOIN correlation c ON c.request_id = r.request_id
                QUALIFY row_number() OVER (PARTITION BY c.match_class ORDER BY hash(r.request_id)) <= 3)
            WHERE k IS NOT NULL ORDER BY k""").fetchall()
    return [k for (k,) in picks] + ["nobody-at-all@example.invalid"]


def _assert_timeline_matches_reference(db, identities, filters=Filters()) -> int:
    joined = 0
    for identity in identities:
        got = run(str(db), "scim_identity_timeline", filters, identity=identity)
        with read_connection(str(db)) as con:
            want = run_sql(con, REFERENCE, filters.params() | {"identity": identity})
        assert got.to_dict("records") == want.to_dict("records"), identity
        joined += int(got["match_class"].notna().sum())
    return joined


def _side_table_equals_correlation(db) -> None:
    with duckdb.connect(str(db), read_only=True) as con:
        extra, missing = con.execute(f"""SELECT (SELECT count(*) FROM ({BY_KEY} EXCEPT ALL {BY_TEXT_ID})),
                                                (SELECT count(*) FROM ({BY_TEXT_ID} EXCEPT ALL {BY_KEY}))""").fetchone()
        rows, requests = con.execute("SELECT (SELECT count(*) FROM correlation_requests), "
                                     "(SELECT count(request_id) FROM correlation)").fetchone()
        out_of_order = con.execute("""SELECT count(*) FROM (
            SELECT (user_name_lower IS NULL, user_name_lower, request_id)
                   <= lag((user_name_lower IS NULL, user_name_lower, request_id)) OVER (ORDER BY rowid) AS down
            FROM correlation_requests) WHERE down""").fetchone()[0]
    assert (extra, missing) == (0, 0) and rows == requests > 0
    assert out_of_order == 0  # sorted by userName: what lets the timeline read one identity's row groups


def test_timeline_rows_equal_the_reference_sql_on_the_demo(demo_db, truth):
    identities = _identities(demo_db)
    assert len(identities) > 10
    joined = _assert_timeline_matches_reference(demo_db, identities)
    assert joined > 0  # the correlation side is really there, not all NULL
    _side_table_equals_correlation(demo_db)
    with duckdb.connect(str(demo_db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM correlation_requests").fetchone()[0] == truth["scim"]["total"]


def test_timeline_with_a_time_window_equals_the_reference(demo_db):
    with duckdb.connect(str(demo_db), read_only=True) as con:
        first, last = con.execute("SELECT min(ts), max(ts) FROM scim_requests").fetchone()
    middle = first + (last - first) / 2
    window = Filters(since=middle - timedelta(days=1), until=middle + timedelta(days=1))
    _assert_timeline_matches_reference(demo_db, _identities(demo_db)[:12], window)


def test_a_stale_sorted_copy_is_rebuilt_and_the_results_keyed_by_request_id_still_join(demo_db, tmp_path):
    """The userName-sorted copy built by another definition (its fingerprint differs; here its rows shuffled) is
    rebuilt when the store opens; the correlation results, keyed by request id, are not touched and still join."""
    db = tmp_path / "stale.duckdb"
    shutil.copy(demo_db, db)
    with duckdb.connect(str(db)) as con:
        before = con.execute("SELECT * FROM correlation_requests ORDER BY rowid").fetchall()
        con.execute("CREATE TEMP TABLE shuffled AS "
                    "SELECT * FROM derived_scim_requests_by_user ORDER BY hash(request_id)")
        con.execute("DELETE FROM derived_scim_requests_by_user")
        con.execute("INSERT INTO derived_scim_requests_by_user SELECT * FROM shuffled")
        con.execute("UPDATE summary_state SET fingerprint = 'older' WHERE summary = 'derived_scim_requests_by_user'")

    done = run_cli("ingest", "migrate", "--db", str(db))
    assert done.returncode == exitcodes.OK, done.stderr
    assert "rebuilding summary derived_scim_requests_by_user " in done.stderr
    assert "rebuilding summary correlation_requests " not in done.stderr
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT * FROM correlation_requests ORDER BY rowid").fetchall() == before
    _side_table_equals_correlation(db)
    _assert_timeline_matches_reference(db, _identities(db))


def test_stale_results_are_rebuilt_from_the_correlation_and_a_correlation_writes_the_same(demo_db, tmp_path):
    """Results built by another definition (here emptied, fingerprint changed) are rebuilt from ``correlation`` when
    the store opens; a correlation run then writes the same rows in the same order."""
    db = tmp_path / "stale-results.duckdb"
    shutil.copy(demo_db, db)
    with duckdb.connect(str(db)) as con:
        con.execute("DELETE FROM correlation_requests")
        con.execute("UPDATE summary_state SET fingerprint = 'older' WHERE summary = 'correlation_requests'")

    done = run_cli("ingest", "migrate", "--db", str(db))
    assert done.returncode == exitcodes.OK, done.stderr
    assert "rebuilding summary correlation_requests " in done.stderr
    _side_table_equals_correlation(db)
    _assert_timeline_matches_reference(db, _identities(db))
    with duckdb.connect(str(db), read_only=True) as con:
        backfilled = con.execute("SELECT * FROM correlation_requests ORDER BY rowid").fetchall()

    rebuilt = run_cli("ingest", "correlate", "--db", str(db))
    assert rebuilt.returncode == exitcodes.OK, rebuilt.stderr
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT * FROM correlation_requests ORDER BY rowid").fetchall() == backfilled
    _side_table_equals_correlation(db)
