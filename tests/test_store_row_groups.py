"""What a Store writes is in row groups of ``STORE_ROW_GROUP_SIZE`` rows (issue 7 B1: commits bigger than a
row group write full groups during the INSERT instead of re-compressing a partial one at every commit), and
the file stays an ordinary DuckDB file: a plain read-only connection reads every event."""

from __future__ import annotations

import json

import duckdb

from ingest.loading import StagingFile, load_staged
from ingest.store import STORE_ROW_GROUP_SIZE, Store


def _copies(events: list[dict], n: int) -> list[dict]:
    """``n`` events made from the simulator's, each with its own id."""
    return [{**events[i % len(events)], "id": f"copy-{i}"} for i in range(n)]


def _stage_pages(folder, events: list[dict], page: int = 999) -> StagingFile:
    staging = StagingFile(str(folder))
    for k in range(0, len(events), page):
        body = json.dumps({"pos": f"page {k}", "value": events[k:k + page]}).encode()
        staging.write(body + b"\n", len(events[k:k + page]), page=True)
    return staging


def _row_groups(con) -> list[int]:
    return [r[0] for r in con.execute(
        "SELECT max(start + count) - min(start) FROM pragma_storage_info('events') WHERE column_id = 0 "
        "GROUP BY row_group_id ORDER BY row_group_id").fetchall()]


def test_loads_write_store_sized_row_groups_and_lose_nothing(tmp_path, sim):
    db = str(tmp_path / "s.duckdb")
    events = _copies(sim.events, 2 * STORE_ROW_GROUP_SIZE + 5_000)
    half = len(events) // 2
    for part in (events[:half], events[half:]):  # two commits, as a backfill makes them
        staging = _stage_pages(tmp_path, part)
        try:
            with Store.open(db) as store:
                result = load_staged(store, staging, run_id=store.start_run("graph"), likely_new=True)
        finally:
            staging.discard()
        assert (result.read, result.new, result.invalid) == (len(part), len(part), 0)
    with duckdb.connect(db, read_only=True) as con:  # an ordinary file: no special attach needed to read it
        groups = _row_groups(con)
        ids = {r[0] for r in con.execute("SELECT id FROM events").fetchall()}
        sample = con.execute("SELECT raw::VARCHAR FROM events WHERE id = 'copy-7'").fetchone()[0]
    assert ids == {e["id"] for e in events}
    assert sum(groups) == len(events) and max(groups) <= STORE_ROW_GROUP_SIZE
    assert len(groups) >= len(events) // STORE_ROW_GROUP_SIZE + 1
    assert json.loads(sample) == events[7]


def test_a_reopened_store_finds_its_tables_and_migrates_nothing_twice(tmp_path):
    """The attachment is the default catalog: unqualified SQL and the migration check see the store's
    tables only (and reopening finds them, so nothing is migrated twice)."""
    db = str(tmp_path / "s.duckdb")
    with Store.open(db) as store:
        first = store.migrations_applied
        tables = {r[0] for r in store.con.execute("SHOW TABLES").fetchall()}
    with Store.open(db) as store:
        again = store.migrations_applied
    assert first and not again and {"events", "schema_version", "meta"} <= tables
