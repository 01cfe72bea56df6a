"""``derived_scim_requests_by_user`` (ingest/summaries/scim.py) never lacks a request: a SCIM load
appends its requests, and rewrites the table sorted by userName once the appended rows exceed a quarter of the
sorted ones (``correlation_requests``, keyed by request id, is not touched). The per-identity queries give the
plain SQL's rows both with an unsorted tail (requests not yet correlated included) and after a rewrite."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from ingest.scim import ingest as scim_ingest
from ingest.summaries import scim as decl
from queries.catalog import QUERIES
from queries.db import read_connection, run_sql
from tests.conftest import run_cli
from tests.test_scim_derived import REFERENCE
from tests.test_scim_timeline_key import BY_KEY, BY_TEXT_ID

_COLUMNS = ", ".join(decl.BY_USER_COLUMNS)
_ORDER_BROKEN = """SELECT count(*) FROM (
    SELECT (user_name_lower, ts, request_id) < lag((user_name_lower, ts, request_id)) OVER (ORDER BY rowid) AS down,
           user_name_lower IS NOT NULL AND lag(user_name_lower IS NULL) OVER (ORDER BY rowid) AS null_before
    FROM derived_scim_requests_by_user) WHERE down OR null_before"""

_KEYS_ORDER_BROKEN = """SELECT count(*) FROM (
    SELECT key < lag(key) OVER (ORDER BY rowid) AS down FROM derived_scim_key_user_names) WHERE down"""


def _split_trail(sim_dir, tmp_path, first_share: float):
    lines = (sim_dir / "scim-audit.jsonl").read_bytes().splitlines(keepends=True)
    cut = int(len(lines) * first_share)
    first, rest = tmp_path / "part1.jsonl", tmp_path / "part2.jsonl"
    first.write_bytes(b"".join(lines[:cut]))
    rest.write_bytes(b"".join(lines[cut:]))
    return first, rest


def _state(db) -> dict:
    with duckdb.connect(str(db), read_only=True) as con:
        missing, extra = con.execute(f"""SELECT
            (SELECT count(*) FROM (SELECT {_COLUMNS} FROM scim_requests
                                   EXCEPT ALL SELECT {_COLUMNS} FROM derived_scim_requests_by_user)),
            (SELECT count(*) FROM (SELECT {_COLUMNS} FROM derived_scim_requests_by_user
                                   EXCEPT ALL SELECT {_COLUMNS} FROM scim_requests))""").fetchone()
        keys_missing = con.execute(f"""SELECT count(*) FROM (
            SELECT * FROM ({decl.KEY_USER_NAMES_SELECT.format(src='scim_requests')})
            EXCEPT SELECT key, user_name_lower FROM derived_scim_key_user_names)""").fetchone()[0]
        keys_extra = con.execute(f"""SELECT count(*) FROM (
            SELECT key, user_name_lower FROM derived_scim_key_user_names
            EXCEPT ALL SELECT * FROM ({decl.KEY_USER_NAMES_SELECT.format(src='scim_requests')}))""").fetchone()[0]
        keys_order_broken = con.execute(_KEYS_ORDER_BROKEN).fetchone()[0]
        sorted_rows = con.execute("SELECT rows_at_build FROM summary_state WHERE summary = ?",
                                  [decl.SCIM_BY_USER.table]).fetchone()[0]
        return {"missing": missing, "extra": extra, "keys_missing": keys_missing, "keys_extra": keys_extra,
                "keys_order_broken": keys_order_broken, "sorted_rows": sorted_rows,
                "rows": con.execute("SELECT count(*) FROM scim_requests").fetchone()[0],
                "order_broken": con.execute(_ORDER_BROKEN).fetchone()[0],
                "stale_keys": con.execute(f"SELECT count(*) FROM ({BY_KEY} EXCEPT ALL {BY_TEXT_ID})").fetchone()[0]}


def _assert_identity_queries_match(db, *, at_least: int, loads: int = 2) -> None:
    """Both per-identity queries against the plain SQL, for identities with requests in ``loads`` loads."""
    with read_connection(str(db)) as con:
        picks = con.execute("""
            SELECT any_value(r.user_name), any_value(r.resource_id), any_value(e.source_id)
            FROM scim_requests r JOIN events e ON lower(e.user_name) = r.user_name_lower
            GROUP BY r.user_name_lower HAVING count(DISTINCT r.first_ingested_at) >= $loads
            ORDER BY count(*) DESC, 1 LIMIT 6""", {"loads": loads}).fetchall()
    assert len(picks) >= 3  # identities whose requests came in that many loads
    rows = 0
    for user, resource_id, source_id in picks:
        for name, identity in [("scim_identity_timeline", user.upper()), ("scim_identity_timeline", resource_id),
                               ("identity_scim_requests", None)]:
            params = {"since": None, "until": None, "sps": None, "job": None, "identity": identity,
                      "source_id": source_id}
            with read_connection(str(db)) as con:
                want = run_sql(con, REFERENCE[name], params)
                got = run_sql(con, QUERIES[name].sql, params)
            pd.testing.assert_frame_equal(got, want, check_exact=True, obj=f"{name} {identity or source_id}")
            rows += len(want)
    assert rows >= at_least


@pytest.fixture()
def events_db(sim_dir, tmp_path):
    db = tmp_path / "byuser.duckdb"
    run_cli("ingest", "files", "--db", str(db), "-q", str(sim_dir / "events.ndjson"), check=True)
    return db


def test_a_small_load_is_appended_and_read_before_it_is_correlated(events_db, sim_dir, tmp_path):
    first, rest = _split_trail(sim_dir, tmp_path, 0.9)
    scim_ingest.ingest_scim(str(events_db), [str(first)], quiet=True, correlate=True)
    after_first = _state(events_db)
    assert after_first["sorted_rows"] == after_first["rows"] and after_first["order_broken"] == 0

    scim_ingest.ingest_scim(str(events_db), [str(rest)], quiet=True, correlate=False)
    state = _state(events_db)
    assert (state["missing"], state["extra"], state["keys_missing"], state["stale_keys"]) == (0, 0, 0, 0)
    assert state["sorted_rows"] == after_first["sorted_rows"] < state["rows"]  # ~10% appended: no rewrite
    assert state["order_broken"] > 0  # the appended tail really is out of order
    with duckdb.connect(str(events_db), read_only=True) as con:
        uncorrelated = con.execute("SELECT count(*) FROM derived_scim_requests_by_user b ANTI JOIN "
                                   "correlation_requests c ON c.request_id = b.request_id").fetchone()[0]
    assert uncorrelated == state["rows"] - after_first["rows"]  # shown with no correlation until the next one
    _assert_identity_queries_match(events_db, at_least=20)


def test_a_big_load_rewrites_the_table_sorted_and_keeps_the_correlation(events_db, sim_dir, tmp_path):
    first, rest = _split_trail(sim_dir, tmp_path, 0.5)
    scim_ingest.ingest_scim(str(events_db), [str(first)], quiet=True, correlate=True)
    with duckdb.connect(str(events_db), read_only=True) as con:
        correlated = con.execute(f"SELECT count(*) FROM ({BY_KEY})").fetchone()[0]
    scim_ingest.ingest_scim(str(events_db), [str(rest)], quiet=True, correlate=False)
    state = _state(events_db)
    assert (state["missing"], state["extra"], state["keys_missing"], state["stale_keys"]) == (0, 0, 0, 0)
    assert state["sorted_rows"] == state["rows"] and state["order_broken"] == 0  # rewritten: half was appended
    assert state["keys_extra"] == 0 and state["keys_order_broken"] == 0  # the key table too (migration 18)
    with duckdb.connect(str(events_db), read_only=True) as con:  # the first load's results, kept as they were
        assert con.execute(f"SELECT count(*) FROM ({BY_KEY})").fetchone()[0] == correlated > 0
    _assert_identity_queries_match(events_db, at_least=20)

    run_cli("ingest", "correlate", "--db", str(events_db), check=True)
    state = _state(events_db)
    assert state["stale_keys"] == 0 and state["order_broken"] == 0
    _assert_identity_queries_match(events_db, at_least=20)


def test_a_stale_key_table_is_rebuilt_sorted(events_db, sim_dir, tmp_path):
    """A key table built by another definition (here in the order its loads appended) is rebuilt with the same
    keys sorted by key when the store opens, so the per-identity lookups' zone maps find a key in one row group."""
    from ingest.store import Store

    first, rest = _split_trail(sim_dir, tmp_path, 0.9)
    scim_ingest.ingest_scim(str(events_db), [str(first)], quiet=True, correlate=False)
    scim_ingest.ingest_scim(str(events_db), [str(rest)], quiet=True, correlate=False)  # appended, no re-sort
    with duckdb.connect(str(events_db)) as con:  # as a provlens before migration 18 left it
        con.execute("CREATE TEMP TABLE k AS SELECT * FROM derived_scim_key_user_names")
        con.execute("DELETE FROM derived_scim_key_user_names")
        con.execute("INSERT INTO derived_scim_key_user_names SELECT * FROM k ORDER BY hash(key)")
        con.execute("UPDATE summary_state SET fingerprint = 'older' WHERE summary = 'derived_scim_key_user_names'")
    assert _state(events_db)["keys_order_broken"] > 0
    with Store.open(str(events_db)) as store:
        assert store.summaries_rebuilt == ["derived_scim_key_user_names"]
    state = _state(events_db)
    assert (state["keys_missing"], state["keys_extra"], state["keys_order_broken"]) == (0, 0, 0)
    _assert_identity_queries_match(events_db, at_least=20)
