"""Derived state (ingest/derived.py): after incremental loads - out of order, with re-sent events that
changed - every derived table equals a recomputation from all events, and the migration backfills it."""

from __future__ import annotations

import copy
import json

import duckdb

from ingest import derived
from ingest.store import Store

TABLES = {
    "derived_failures": derived._FAILURE_COLUMNS,
    "derived_cycles": derived.CYCLE_COLUMNS,
    "derived_event_hours": derived.HOUR_COLUMNS,
    "derived_work_domains": ("domain",),
    "derived_cycle_heads": derived.CYCLE_HEAD_COLUMNS,
    "derived_skip_identities": derived.SKIP_IDENTITY_COLUMNS,
    "derived_skip_reasons": derived.SKIP_REASON_COLUMNS,
    "derived_error_codes": derived.ERROR_CODE_COLUMNS,
    "derived_recent_failures": derived._FAILURE_COLUMNS,
    "derived_violation_groups": derived.VIOLATION_GROUP_COLUMNS,
    "derived_identity_events": derived.IDENTITY_EVENT_COLUMNS,
    "derived_skip_top": derived.SKIP_TOP_COLUMNS,
}


def _load(store: Store, events: list[dict]) -> None:
    store.load_events("SELECT unnest(?::JSON[]) AS raw, 'test#1' AS pos", [[json.dumps(e) for e in events]],
                      run_id=store.start_run("test"))


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return sorted(con.execute(sql).fetchall(), key=repr)


def _assert_matches_recomputation(con: duckdb.DuckDBPyConnection) -> None:
    for table, columns in TABLES.items():
        stored = _rows(con, f"SELECT {', '.join(columns)} FROM {table}")
        fresh = _rows(con, derived.full_select(table))
        assert stored == fresh, table
        assert stored, table  # the simulation has failures, cycles, hours and work domains


def _assert_identity_events_sorted(con: duckdb.DuckDBPyConnection) -> None:
    """derived_identity_events rewritten sorted: each of the loads before this one appended more than a quarter
    of the sorted rows (or filled an empty store), so the table was rewritten and meta holds its size."""
    rows, sorted_rows, out_of_order = con.execute(f"""SELECT count(*),
        (SELECT value::BIGINT FROM meta WHERE key = '{derived.IDENTITY_EVENTS_SORTED_META}'),
        count(*) FILTER (WHERE k < prev)
        FROM (SELECT k, lag(k) OVER (ORDER BY rowid) AS prev
              FROM (SELECT rowid, (source_id IS NULL, coalesce(source_id, ''), activity_time, id) AS k
                    FROM derived_identity_events))""").fetchone()
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


def test_newest_failures_stay_the_newest_when_few_are_kept(sim, tmp_path, monkeypatch):
    """derived_recent_failures keeps the newest N failures incrementally (drop touched identities, add
    their newest, cut below the old last row): with a small N, out-of-order loads and a failure that
    turns into a success exercise every branch."""
    monkeypatch.setattr(derived, "RECENT_FAILURE_ROWS", 7)
    test_incremental_loads_equal_a_full_recomputation(sim, tmp_path)


def test_migration_backfills_derived_state_for_existing_rows(sim, tmp_path):
    db = str(tmp_path / "m.duckdb")
    with Store.open(db) as store:
        _load(store, sim.events)
        derived_tables = store.con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' "
                                           "AND table_name LIKE 'derived%'").fetchall()
        for (table,) in derived_tables:  # as a database from before migration 3
            store.con.execute(f"DROP TABLE {table}")
        for (index,) in store.con.execute("SELECT index_name FROM duckdb_indexes() WHERE sql IS NOT NULL").fetchall():
            store.con.execute(f"DROP INDEX {index}")  # created by later migrations (3+ re-run below)
        store.con.execute("DELETE FROM schema_version WHERE version >= 3")
    with Store.open(db) as store:  # applies migrations 3 and 4: the tables, filled from the events
        _assert_matches_recomputation(store.con)


def _identity_events_state(con: duckdb.DuckDBPyConnection) -> tuple[int, int, int]:
    """(rows, sorted rows per meta, rows out of the table's sort order)."""
    return con.execute(f"""SELECT count(*),
        (SELECT value::BIGINT FROM meta WHERE key = '{derived.IDENTITY_EVENTS_SORTED_META}'),
        count(*) FILTER (WHERE k < prev)
        FROM (SELECT k, lag(k) OVER (ORDER BY rowid) AS prev
              FROM (SELECT rowid, (source_id IS NULL, coalesce(source_id, ''), activity_time, id) AS k
                    FROM derived_identity_events))""").fetchone()


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
                assert not store.con.execute("SELECT count(*) FROM meta WHERE key = ?", [
                    derived.replaced_rows_key(derived.IDENTITY_EVENTS_SORTED_META)]).fetchone()[0]
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
