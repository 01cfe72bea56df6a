"""The correlation joins on integer surrogates (rowids) since issue 7 B8; its tie-breaks must still be the
text ids: a request with two equally good events (same key, same distance in time) joins the event whose
id sorts first, and every request is classified exactly once."""

from __future__ import annotations

import shutil

import duckdb

from ingest import exitcodes
from tests.conftest import run_cli


def test_a_tie_between_two_events_goes_to_the_smaller_event_id(demo_db, tmp_path):
    db = tmp_path / "ties.duckdb"
    shutil.copy(demo_db, db)
    with duckdb.connect(str(db)) as con:
        event_id, request_id, delta_ms = con.execute(
            "SELECT event_id, request_id, (epoch_ms(request_ts) - epoch_ms(event_time)) FROM correlation "
            "WHERE match_class = 'matched' AND match_key = 'resource_id' AND delta_s <> 0 "
            "ORDER BY event_id, request_id LIMIT 1").fetchone()
        # A twin of the event, as far from the request on the other side, with an id that sorts first.
        twin_id = "!" + event_id
        con.execute("INSERT INTO events SELECT * REPLACE ($twin AS id, "
                    "activity_time + to_milliseconds($shift) AS activity_time) FROM events WHERE id = $id",
                    {"twin": twin_id, "shift": 2 * delta_ms, "id": event_id})
        assert con.execute("SELECT count(*) FROM scim_requests").fetchone()[0] > 0
    proc = run_cli("ingest", "correlate", "--db", str(db))
    assert proc.returncode == exitcodes.OK, proc.stderr
    with duckdb.connect(str(db), read_only=True) as con:
        joined = con.execute("SELECT event_id, match_key, abs(delta_s) FROM correlation WHERE request_id = $r "
                             "AND event_id IS NOT NULL", {"r": request_id}).fetchall()
        assert joined == [(twin_id, "resource_id", abs(delta_ms) / 1000.0)]
        per_request = con.execute("SELECT max(n), count(*) FROM (SELECT count(*) AS n FROM correlation "
                                  "WHERE request_id IS NOT NULL GROUP BY request_id)").fetchone()
        requests = con.execute("SELECT count(*) FROM scim_requests").fetchone()[0]
        assert per_request == (1, requests)
        events = con.execute("SELECT count(DISTINCT event_id) FROM correlation").fetchone()[0]
        assert events == con.execute("SELECT count(*) FROM events").fetchone()[0]
