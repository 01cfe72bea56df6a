"""The fast backfill's load options (B1): ``defer_derived`` leaves the derived refresh to a later load (also
after a kill: the pending runs are in summary_pending_runs), and ``likely_new`` inserts without a key scan but still
falls back to the usual path when an id is already stored. The derived tables end equal to a full
recomputation and no id is stored twice."""

from __future__ import annotations

import json

import duckdb

from ingest.loading import StagingFile, load_staged
from ingest.store import Store
from tests.test_store_derived import _assert_matches_recomputation


def _staged(events: list[dict]) -> StagingFile:
    staging = StagingFile()
    staging.write(b"".join(json.dumps({"pos": f"t#{i}", "raw": e}).encode() + b"\n" for i, e in enumerate(events)))
    return staging


def _batches(sim) -> list[list[dict]]:
    events = sorted(sim.events, key=lambda e: e["activityDateTime"])
    third = len(events) // 3
    return [events[:third], events[third:2 * third], events[2 * third:]]


def _load(db: str, events: list[dict], **options):
    staging = _staged(events)
    try:
        with Store.open(db) as store:
            run = store.start_run("graph", "t")
            result = load_staged(store, staging, run_id=run, **options)
            return result, [r for (r,) in store.con.execute("SELECT run_id FROM summary_pending_runs").fetchall()]
    finally:
        staging.discard()


def test_deferred_refresh_survives_a_kill_and_a_known_id_takes_the_usual_path(sim, tmp_path):
    db = str(tmp_path / "b.duckdb")
    first, second, third = _batches(sim)
    result, pending = _load(db, first, defer_derived=True, likely_new=True)
    assert result.new == len(first) and pending
    result, pending = _load(db, second, defer_derived=True, likely_new=True)
    assert result.new == len(second) and len(pending) == 2
    con = duckdb.connect(db, read_only=True)
    assert con.execute("SELECT count(*) FROM derived_cycles").fetchone()[0] == 0  # not refreshed yet
    con.close()
    # "killed" here; the next load re-sends one known event (the optimistic insert must roll back)
    result, pending = _load(db, [second[-1], *third], likely_new=True)
    assert pending == []
    assert (result.new, result.read - result.new - result.invalid) == (len(third), 1)
    with Store.open(db) as store:
        ids = [r[0] for r in store.con.execute("SELECT id FROM events").fetchall()]
        assert sorted(ids) == sorted(e["id"] for e in sim.events)
        _assert_matches_recomputation(store.con)


def test_refresh_pending_derived_alone(sim, tmp_path):
    db = str(tmp_path / "p.duckdb")
    for batch in _batches(sim):
        _load(db, batch, defer_derived=True, likely_new=True)
    with Store.open(db) as store:
        assert store.refresh_pending_derived() is True
        assert not store.con.execute("SELECT count(*) FROM summary_pending_runs").fetchone()[0]
        _assert_matches_recomputation(store.con)
        assert store.refresh_pending_derived() is False
