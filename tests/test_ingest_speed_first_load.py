"""A load into an empty store skips the key scan (ingest/store.py ``_load_into_empty``, issue 7 B2): the rows,
rejects and derived state must be exactly what the usual path (key scan, anti-join) gives, clean or dirty."""

from __future__ import annotations

import json

import pytest

from ingest.loading import StagingFile, load_staged
from ingest.store import DirtyInput, Store
from tests.test_store_derived import _assert_matches_recomputation

LOADED = ("id, activity_time, tenant_id, job_id, cycle_id, change_id, service_principal_id, action, status, "
          "error_code, http_status, scim_type, retry_count, next_retry_at, source_id, source_upn, target_id, "
          "user_name, email, email_domain, skip_reason, skip_category, import_kind, duration_ms, raw::VARCHAR")
OUTSIDER = {"id": "not-in-the-batch", "activityDateTime": "2020-01-01T00:00:00Z"}


def _events(con, exclude: str = OUTSIDER["id"]) -> set[tuple]:
    return set(con.execute(f"SELECT {LOADED} FROM events WHERE id <> ?", [exclude]).fetchall())


def _with_outsider(db: str) -> None:
    """A store that is not empty (one unrelated event, loaded the slow way): the usual path runs next."""
    with Store.open(db) as store:
        store.load_events("SELECT ?::JSON AS raw, 'x#1' AS pos", [json.dumps(OUTSIDER)], run_id=None)


def test_first_clean_load_equals_the_usual_path(tmp_path, sim_dir, truth):
    fresh, usual = str(tmp_path / "fresh.duckdb"), str(tmp_path / "usual.duckdb")
    _with_outsider(usual)
    results = {}
    for db in (fresh, usual):
        with Store.open(db) as store:
            results[db] = store.load_clean_ndjson(sim_dir / "events.ndjson", run_id=store.start_run("files"))
    assert results[fresh].new == results[fresh].read == truth["events"]["total"]
    assert (results[usual].new, results[usual].read) == (results[fresh].new, results[fresh].read)
    with Store.open(fresh) as a, Store.open(usual) as b:
        rows = _events(a.con)
        assert len(rows) == truth["events"]["total"] and rows == _events(b.con)
        _assert_matches_recomputation(a.con)


def _dirty_batch(sim) -> list[dict]:
    good = [json.loads(json.dumps(e)) for e in sim.events[:300]]
    twin = dict(good[5], durationInMilliseconds=1)  # the same id again, other content
    no_time = dict(good[7], id="no-time")
    del no_time["activityDateTime"]
    empty_id = dict(good[9], id="")
    return [*good, twin, no_time, empty_id]


@pytest.mark.parametrize("dirt", ["all", "empty_id_only", "duplicate_only"])
def test_first_dirty_load_rejects_what_the_usual_path_rejects(tmp_path, sim, dirt):
    batch = _dirty_batch(sim)
    if dirt == "empty_id_only":
        batch = batch[:300] + batch[-1:]
    elif dirt == "duplicate_only":
        batch = batch[:301]
    fresh, usual = str(tmp_path / "fresh.duckdb"), str(tmp_path / "usual.duckdb")
    _with_outsider(usual)
    seen = {}
    for db in (fresh, usual):
        staging = StagingFile(str(tmp_path))
        for i, e in enumerate(batch):
            staging.write(json.dumps({"pos": f"batch#{i}", "raw": e}).encode() + b"\n")
        try:
            with Store.open(db) as store:
                run = store.start_run("files")
                result = load_staged(store, staging, run_id=run)
                rejects = store.con.execute("SELECT file, position, reason FROM ingest_rejects WHERE run_id = ? "
                                            "ORDER BY position", [run]).fetchall()
                seen[db] = (result, rejects, _events(store.con))
        finally:
            staging.discard()
    result, rejects, rows = seen[fresh]
    assert (result.read, result.new, result.invalid) == (seen[usual][0].read, seen[usual][0].new,
                                                        seen[usual][0].invalid)
    assert rejects == seen[usual][1] and rows == seen[usual][2]
    assert len({r[0] for r in rows}) == len(rows) == 300  # one copy of the twin id, no bad record
    if dirt != "duplicate_only":
        assert rejects and all(r[0] == "batch" for r in rejects)


def test_first_all_or_nothing_load_of_a_dirty_file_writes_nothing(tmp_path, sim):
    db = str(tmp_path / "d.duckdb")
    for name, batch in (("dup", _dirty_batch(sim)[:301]), ("empty", _dirty_batch(sim)[:300] + [{"id": ""}])):
        path = tmp_path / f"{name}.ndjson"
        path.write_text("".join(json.dumps(e) + "\n" for e in batch))
        with Store.open(db) as store:
            with pytest.raises(DirtyInput):
                store.load_clean_ndjson(path, run_id=None)
            assert store.con.execute("SELECT count(*) FROM events").fetchone()[0] == 0
            assert store.con.execute("SELECT count(*) FROM derived_cycles").fetchone()[0] == 0
    with Store.open(db) as store:  # the store is still usable: the clean part loads
        clean = tmp_path / "clean.ndjson"
        clean.write_text("".join(json.dumps(e) + "\n" for e in _dirty_batch(sim)[:300]))
        assert store.load_clean_ndjson(clean, run_id=None).new == 300
