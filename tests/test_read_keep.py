"""Readers keep the database attached between calls (ingest/dbfile.py), and still never keep a writer out
or show stale data: a writer in another process gets in, a writer in this process makes them let go,
a replaced file is noticed, an idle attachment is released, and a running call is never cut off."""

from __future__ import annotations

import json
import os
import threading
import time

import duckdb
import pytest

from ingest.store import Store
from queries import db as qdb
from tests.conftest import run_cli, store_from_events


@pytest.fixture()
def keep(monkeypatch):
    def setter(seconds: float) -> None:
        monkeypatch.setenv("PROVLENS_READ_KEEP_S", str(seconds))
    setter(60)
    return setter


def _alias(db: str) -> str:
    with qdb.read_connection(db) as con:
        return con.execute("SELECT current_database()").fetchone()[0]


def _ids(db: str) -> set[str]:
    return set(qdb.run(db, "events")["id"])


def _attached(db: str) -> bool:
    """Whether this process still holds the file: DuckDB refuses a second (read-write) handle on it."""
    try:
        duckdb.connect(db).close()
        return False
    except duckdb.Error as exc:
        assert "already attached" in str(exc), exc
        return True


def test_calls_share_one_attachment_until_released(sim, tmp_path, keep):
    db = store_from_events(tmp_path, "s", sim.events[:50])
    first = _alias(db)
    assert _alias(db) == first and _attached(db)
    qdb.release(db)
    assert not _attached(db)
    assert _alias(db) != first


def test_not_kept_when_keep_is_zero(sim, tmp_path, keep):
    keep(0)
    db = store_from_events(tmp_path, "s", sim.events[:50])
    first = _alias(db)
    assert not _attached(db)
    assert _alias(db) != first


def test_idle_attachment_is_released(sim, tmp_path, keep):
    keep(0.3)
    db = store_from_events(tmp_path, "s", sim.events[:50])
    _ids(db)
    assert _attached(db)
    deadline = time.monotonic() + 5
    while _attached(db) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _attached(db)


def test_writer_in_another_process_gets_in_and_its_rows_are_seen(sim, tmp_path, keep):
    db = store_from_events(tmp_path, "s", sim.events[:50])
    assert _ids(db) == {e["id"] for e in sim.events[:50]}
    assert _attached(db)  # kept for 60 s: only the writer's marker can make it let go
    more = tmp_path / "more.ndjson"
    more.write_text("".join(json.dumps(e) + "\n" for e in sim.events[50:120]), encoding="utf-8")
    started = time.monotonic()
    proc = run_cli("ingest", "files", "--db", db, "-q", str(more))
    waited = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert waited < 20, waited  # a correctness bound (the writer was let in), not a performance target
    assert _ids(db) == {e["id"] for e in sim.events[:120]}


def test_writer_in_this_process_makes_readers_let_go(sim, tmp_path, keep):
    db = store_from_events(tmp_path, "s", sim.events[:50])
    before = _alias(db)
    with Store.open(db) as store:  # DuckDB would refuse this while the file is attached here
        run_id = store.start_run("files")
        path = tmp_path / "more.ndjson"
        path.write_text("".join(json.dumps(e) + "\n" for e in sim.events[50:80]), encoding="utf-8")
        store.load_clean_ndjson(path, run_id=run_id)
        store.finish_run(run_id, "success")
    assert _ids(db) == {e["id"] for e in sim.events[:80]}
    assert _alias(db) != before


def test_replaced_file_is_read_afresh(sim, tmp_path, keep):
    db = store_from_events(tmp_path, "s", sim.events[:50])
    other = store_from_events(tmp_path, "o", sim.events[200:230])
    assert _ids(db) == {e["id"] for e in sim.events[:50]}
    os.replace(other, db)  # as `ingest compact` + a manual swap would
    assert _ids(db) == {e["id"] for e in sim.events[200:230]}


def test_release_never_cuts_off_a_running_call(sim, tmp_path, keep):
    db = store_from_events(tmp_path, "s", sim.events[:50])
    inside, finish = threading.Event(), threading.Event()
    seen: list[int] = []

    def reader() -> None:
        with qdb.read_connection(db) as con:
            inside.set()
            finish.wait(10)
            seen.append(con.execute("SELECT count(*) FROM events").fetchone()[0])

    thread = threading.Thread(target=reader)
    thread.start()
    assert inside.wait(10)
    qdb.release(db)  # retired while in use: detached when the call ends, not before
    assert _attached(db)
    finish.set()
    thread.join(10)
    assert seen == [50]
    assert not _attached(db)
