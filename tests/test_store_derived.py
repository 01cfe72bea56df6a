"""Summaries (ingest/summaries): after incremental loads - out of order, with re-sent events that changed, with
overlapping pulls - every event summary equals its own definition recomputed from all events, and a summary whose
declaration changed is rebuilt when the store opens."""

from __future__ import annotations

import copy
import json

import duckdb

from ingest import summaries
from ingest.store import Store

EVENT_SUMMARIES = [s for s in summaries.declared() if s.refreshed_by == "events"]
IDENTITY_EVENTS = summaries.by_table()["derived_identity_events"]


def _load(store: Store, events: list[dict]) -> None:
    store.load_events("SELECT unnest(?::JSON[]) AS raw, 'test#1' AS pos", [[json.dumps(e) for e in events]],
                      run_id=store.start_run("test"))


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return sorted(con.execute(sql).fetchall(), key=repr)


def _assert_matches_recomputation(con: duckdb.DuckDBPyConnection) -> None:
    for s in EVENT_SUMMARIES:
        stored = _rows(con, f"SELECT * FROM {s.table}")
        fresh = _rows(con, s.build_sql())
        assert stored == fresh, s.table
        assert stored, s.table  # the simulation has failures, cycles, hours, work domains and identities


def _identity_events_state(con: duckdb.DuckDBPyConnection) -> tuple[int, int, int]:
    """(rows, rows at its last sorted rewrite, rows out of the table's sort order)."""
    return con.execute("""SELECT count(*),
        (SELECT rows_at_build FROM summary_state WHERE summary = 'derived_identity_events'),
        count(*) FILTER (WHERE k < prev)
        FROM (SELECT k, lag(k) OVER (ORDER BY rowid) AS prev
              FROM (SELECT rowid, (source_id IS NULL, coalesce(source_id, ''), activity_time, id) AS k
                    FROM derived_identity_events))""").fetchone()


def _assert_identity_events_sorted(con: duckdb.DuckDBPyConnection) -> None:
    """derived_identity_events rewritten sorted: each of the loads before this one appended more than a quarter
    of the sorted rows (or filled an empty store), so the table was rewritten and its state holds its size."""
    rows, sorted_rows, out_of_order = _identity_events_state(con)
    assert rows == sorted_rows > 0 and out_of_order == 0


def _flip_first_failure_to_success(events: list[dict]) -> dict:
    """A re-sent copy of a failed event that now reports success (moves runs, resolutions, counts)."""
    for e in events:
        info = e.get("provisioningStatusInfo") or {}
        if str(info.get("status", "")).lower() == "failure":
            changed = copy.deepcopy(e)
            changed["provisioningStatusInfo"] = {"status": "success"}
            return changed
    raise AssertionError("the simulation has no failure")


def test_incremental_loads_equal_a_full_recomputation(sim, tmp_path):
    db = str(tmp_path / "d.duckdb")
    events = sorted(sim.events, key=lambda e: e["activityDateTime"])
    late, early = events[len(events) // 2:], events[: len(events) // 2]
    with Store.open(db) as store:
        _load(store, late)  # the newer half first: the older half then lands before existing rows
        _assert_identity_events_sorted(store.con)
        _load(store, early[::2])
        _assert_identity_events_sorted(store.con)
        _load(store, early[1::2])
        _assert_identity_events_sorted(store.con)
        _assert_matches_recomputation(store.con)
        _load(store, [_flip_first_failure_to_success(events)])  # an update, not an insert
        _assert_matches_recomputation(store.con)
        _load(store, events[:50])  # nothing new: nothing changes
        _assert_matches_recomputation(store.con)


def test_a_changed_declaration_is_rebuilt_when_the_store_opens(sim, tmp_path, monkeypatch):
    """A summary is a cache: when its declaration changes (its fingerprint), the store rebuilds it from the events
    on open - no migration - and leaves the others alone."""
    db = str(tmp_path / "m.duckdb")
    with Store.open(db) as store:
        _load(store, sim.events)
        store.con.execute("DELETE FROM derived_cycles")  # what a stale cache would hold
        store.con.execute("UPDATE summary_state SET fingerprint = 'old' WHERE summary = 'derived_cycles'")
        store.con.execute("DROP TABLE derived_event_hours")  # a summary missing altogether
        store.con.execute("CREATE TABLE derived_gone AS SELECT 1 AS x")  # one no longer declared
        store.con.execute("INSERT INTO summary_state VALUES ('derived_gone', 'x', now(), 1, 0)")
        built = dict(store.con.execute("SELECT summary, built_at FROM summary_state").fetchall())
    with Store.open(db) as store:
        assert sorted(store.summaries_rebuilt) == ["derived_cycles", "derived_event_hours"]
        _assert_matches_recomputation(store.con)
        now = dict(store.con.execute("SELECT summary, built_at FROM summary_state").fetchall())
        assert now["derived_failures"] == built["derived_failures"]  # untouched
        assert "derived_gone" not in now
        assert not store.con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'derived_gone'"
                                     ).fetchone()[0]


def test_re_sent_changed_events_count_towards_the_identity_events_rewrite(sim, tmp_path):
    """Re-sent events that changed replace their rows at the table's unsorted end without adding rows: three
    loads re-sending 10% each leave 30% of the rows unsorted, more than the quarter that triggers the rewrite."""
    events = sorted(sim.events, key=lambda e: e["activityDateTime"])
    with Store.open(str(tmp_path / "r.duckdb")) as store:
        _load(store, events)
        rows, sorted_rows, _ = _identity_events_state(store.con)
        assert rows == sorted_rows == len(events)
        for n in range(3):
            changed = [dict(copy.deepcopy(e), provlensRevision=n) for e in events[n::10]]  # disjoint tenths
            _load(store, changed)
            rows, sorted_rows, out_of_order = _identity_events_state(store.con)
            assert rows == len(events)
            if n < 2:  # 10%, then 20%: appended, not yet rewritten
                assert out_of_order > 0
            else:
                assert sorted_rows == rows and out_of_order == 0  # rewritten sorted
                assert not store.con.execute("SELECT rows_written FROM summary_state "
                                             "WHERE summary = 'derived_identity_events'").fetchone()[0]
        _assert_matches_recomputation(store.con)


def _identity_event_ids(con: duckdb.DuckDBPyConnection) -> tuple[int, int, int]:
    """(rows in derived_identity_events, distinct ids there, events)."""
    return con.execute("SELECT count(*), count(DISTINCT id), (SELECT count(*) FROM events) "
                       "FROM derived_identity_events").fetchone()


def test_overlapping_pulls_keep_every_event_once(sim, tmp_path):
    """The ingest schedule: each pull re-reads the last 2 hours (late events), so every batch mixes events the
    store already holds, unchanged, with new ones. Each event stays one row in every summary (issue 27: nine
    pulls 40 minutes apart gave 4,416 identity-event rows for 4,280 events)."""
    from datetime import datetime, timedelta

    events = sorted(sim.events, key=lambda e: e["activityDateTime"])
    times = [datetime.fromisoformat(e["activityDateTime"].replace("Z", "+00:00")) for e in events]
    start, step, overlap = times[0], timedelta(minutes=40), timedelta(hours=2)
    with Store.open(str(tmp_path / "o.duckdb")) as store:
        t = start
        pulls = 0
        while t <= times[-1] + step:
            window = [e for e, at in zip(events, times) if t - overlap <= at < t + step]
            if window:
                _load(store, window)
                pulls += 1
                rows, distinct, total = _identity_event_ids(store.con)
                assert rows == distinct == total, (pulls, rows, distinct, total)
            t += step
        assert pulls > 10 and total == len(events)
        _assert_matches_recomputation(store.con)


def test_overlapping_file_loads_keep_every_event_once(sim, tmp_path):
    """Two `ingest files` runs whose exports overlap: the second adds only the events the first lacked (few enough
    to be appended to the summaries, not rewritten with them)."""
    from tests.conftest import run_cli

    events = sorted(sim.events, key=lambda e: e["activityDateTime"])
    third = len(events) // 3
    first, second = tmp_path / "a.ndjson", tmp_path / "b.ndjson"
    first.write_text("".join(json.dumps(e) + "\n" for e in events[: 2 * third]))
    second.write_text("".join(json.dumps(e) + "\n" for e in events[2 * third - 40: 2 * third + 40]))
    db = str(tmp_path / "f.duckdb")
    for path in (first, second):
        run_cli("ingest", "files", str(path), "--db", db, check=True)
    with duckdb.connect(db, read_only=True) as con:
        rows, distinct, total = _identity_event_ids(con)
        assert rows == distinct == total == 2 * third + 40
