"""Chunked CSV exports (issue 7 B7) write the same bytes as one COPY of the whole ordered query.

A big export of events, failures or skipped is written one time range (whole minutes) at a time, each range
sorted by the dataset's own ORDER BY and appended in order. Here the chunk size is set far below the data
so every export is split, and the file is compared byte for byte with the same export written as one query
(chunking off): on the demo data, with filters, and on a store built so that many events share one exact
time (ties of the first sort key, ordered by id, bigger than a chunk and inserted out of id order).
Also: a killed export's spill folder and partial file are removed by the next export in that folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from queries import export as export_module
from queries.db import bind
from queries.filters import Filters
from queries.manifest import verify
from tests.conftest import store_from_events

ROOT = Path(__file__).resolve().parent.parent


def _export_pair(db: str, dataset: str, tmp_path: Path, monkeypatch, filters: Filters | None = None,
                 chunk_rows: int = 7) -> tuple[Path, Path, int]:
    """(plain file, chunked file, number of chunks) for the same export."""
    plain, chunked = tmp_path / f"{dataset}-plain.csv", tmp_path / f"{dataset}-chunked.csv"
    monkeypatch.setattr(export_module, "EXPORT_CHUNK_ROWS", 10**12)  # one chunk: the plain single COPY
    export_module.export(db, dataset, str(plain), filters=filters)
    chunks = []
    real_write_chunks = export_module._write_chunks

    def counting(con, sql, columns, predicates, *args):
        chunks.append(len(predicates))
        return real_write_chunks(con, sql, columns, predicates, *args)

    monkeypatch.setattr(export_module, "_write_chunks", counting)
    monkeypatch.setattr(export_module, "EXPORT_CHUNK_ROWS", chunk_rows)
    export_module.export(db, dataset, str(chunked), filters=filters)
    return plain, chunked, sum(chunks)


def _manifest(path: Path) -> dict:
    manifest = json.loads(Path(str(path) + ".manifest.json").read_text())
    return {k: v for k, v in manifest.items() if k not in ("file", "generated_at")}


@pytest.mark.parametrize("dataset", ["events", "failures", "skipped", "scim-requests"])
def test_a_chunked_export_is_byte_identical_to_one_query(demo_db, tmp_path, monkeypatch, dataset):
    plain, chunked, chunks = _export_pair(str(demo_db), dataset, tmp_path, monkeypatch)
    assert chunks > 3  # really split
    assert chunked.read_bytes() == plain.read_bytes()
    assert _manifest(chunked) == _manifest(plain)  # same rows, sha256, escaped cells, newest time
    assert verify(str(chunked)) == []  # the SHA-256 hashed while appending is the file's


def test_a_chunked_export_with_filters_is_byte_identical(demo_db, tmp_path, monkeypatch, truth):
    con = duckdb.connect(str(demo_db), read_only=True)
    try:
        first, last = con.execute("SELECT min(activity_time), max(activity_time) FROM events").fetchone()
    finally:
        con.close()
    filters = Filters(since=first + (last - first) / 3, until=first + (last - first) * 2 / 3,
                      service_principal_ids=(sorted(truth["events"]["by_service_principal"])[0],))
    plain, chunked, chunks = _export_pair(str(demo_db), "events", tmp_path, monkeypatch, filters=filters)
    assert chunks > 3 and plain.read_bytes().count(b"\n") > 10
    assert chunked.read_bytes() == plain.read_bytes()


def _event(i: int, at: str) -> dict:
    return {
        "id": f"evt-{i:04d}", "activityDateTime": at, "jobId": "job-1", "cycleId": "cycle-1",
        "provisioningAction": "update", "durationInMilliseconds": i,
        "provisioningStatusInfo": {"status": "success", "errorInformation": None},
        "servicePrincipal": {"id": "sp-1", "displayName": "Leapsome"},
        "sourceIdentity": {"id": f"user-{i}", "displayName": f"=name {i}, \"q\"", "identityType": "User",
                           "details": {"UserPrincipalName": f"u{i}@contoso.com"}},
        "targetIdentity": {"id": "", "displayName": "", "identityType": "User", "details": {}},
    }


@pytest.fixture(scope="module")
def ties_db(tmp_path_factory) -> str:
    """Events where 40 share one exact time, 25 another in the same minute, 15 the last microsecond of a
    minute and 15 the first of the next; ids are loaded in reverse, so only the ORDER BY puts them in order."""
    times = (["2026-10-01T10:00:30.000000Z"] * 40 + ["2026-10-01T10:00:31.500000Z"] * 25
             + ["2026-10-01T10:01:59.999999Z"] * 15 + ["2026-10-01T10:02:00.000000Z"] * 15
             + [f"2026-10-01T1{h}:00:00Z" for h in range(1, 6)])
    events = [_event(i, at) for i, at in enumerate(times)][::-1]
    root = tmp_path_factory.mktemp("ties")
    return store_from_events(root, "ties", events)


def test_ties_of_the_time_key_stay_in_one_chunk_in_id_order(ties_db, tmp_path, monkeypatch):
    con = duckdb.connect(ties_db, read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        sql = export_module.dataset_sql(con, "events")
        params = bind(sql, Filters().params())
        predicates = export_module.chunk_predicates(con, export_module.unordered(sql), params, "activity_time",
                                                    "TIMESTAMP WITH TIME ZONE", 5)
        # every chunk holds whole minutes: no exact time is split, however small the chunk size
        per_chunk = [set(con.execute(f"SELECT DISTINCT activity_time FROM events WHERE {p}").fetchall())
                     for p in predicates]
        assert sum(len(c) for c in per_chunk) == len(set().union(*per_chunk))
        assert sum(con.execute(f"SELECT count(*) FROM events WHERE {p}").fetchone()[0] for p in predicates) == \
            con.execute("SELECT count(*) FROM events").fetchone()[0]
        want_ids = [r[0] for r in con.execute("SELECT id FROM events ORDER BY activity_time, id").fetchall()]
    finally:
        con.close()
    # minute 10:00 holds 65 rows, more than a chunk: split at its two exact times (40 and 25 rows, each bigger
    # than a chunk but never split); then 10:01 (15), 10:02 (15) and the five single hours together
    assert len(predicates) == 5
    plain, chunked, chunks = _export_pair(ties_db, "events", tmp_path, monkeypatch, chunk_rows=5)
    assert chunks == len(predicates)
    assert chunked.read_bytes() == plain.read_bytes()
    lines = chunked.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("id,") and sum(1 for line in lines if line.startswith("id,")) == 1
    assert [line.split(",", 1)[0] for line in lines[1:]] == want_ids
    assert _manifest(chunked)["escaped_cells"] == len(want_ids)  # every "=name" neutralised once


def test_parquet_and_small_exports_are_written_by_one_copy(demo_db, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(export_module, "_write_chunks", lambda *a: calls.append(a))
    monkeypatch.setattr(export_module, "EXPORT_CHUNK_ROWS", 7)
    result = export_module.export(str(demo_db), "events", str(tmp_path / "events.parquet"), fmt="parquet")
    monkeypatch.setattr(export_module, "EXPORT_CHUNK_ROWS", 10**12)
    export_module.export(str(demo_db), "events", str(tmp_path / "events.csv"))
    assert not calls
    con = duckdb.connect()
    try:
        assert con.execute("SELECT count(*) FROM read_parquet($p)", {"p": str(tmp_path / "events.parquet")}
                           ).fetchone()[0] == result.rows > 0
    finally:
        con.close()


_KILLED_EXPORT = """
import os, signal, sys
from queries import export as ex
real = ex.isolated_read_connection
def killed(*args, **kwargs):  # the export has made its partial file and spill folder: die like kill -9
    os.kill(os.getpid(), signal.SIGKILL)
ex.isolated_read_connection = killed
ex.export(sys.argv[1], "events", sys.argv[2])
"""


def test_a_killed_exports_spill_folder_and_partial_file_are_removed_by_the_next_export(demo_db, tmp_path):
    out = tmp_path / "events.csv"
    proc = subprocess.run([sys.executable, "-c", _KILLED_EXPORT, str(demo_db), str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    left = sorted(p.name for p in tmp_path.iterdir())
    assert any(n.startswith(".provlens-spill-") for n in left) and any(n.endswith(".part") for n in left), left
    alive = tmp_path / ".provlens-spill-1-inuse"  # pid 1 is alive: an export still running, left alone
    alive.mkdir()
    old_legacy, new_legacy = tmp_path / ".provlens-spill-abcd1234", tmp_path / ".provlens-spill-efgh5678"
    for legacy in (old_legacy, new_legacy):
        legacy.mkdir()
        (legacy / "duckdb_temp_storage-0.tmp").write_bytes(b"x")
    hours_ago = time.time() - 2 * export_module.LEGACY_LEFTOVER_AGE_S
    for path in (old_legacy, old_legacy / "duckdb_temp_storage-0.tmp"):
        os.utime(path, (hours_ago, hours_ago))

    export_module.export(str(demo_db), "events", str(out))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == sorted([alive.name,
                                                                                           new_legacy.name])
    assert out.exists() and out.stat().st_size > 0


def test_an_export_leaves_no_spill_folder(demo_db, tmp_path, monkeypatch):
    monkeypatch.setattr(export_module, "EXPORT_CHUNK_ROWS", 7)
    export_module.export(str(demo_db), "events", str(tmp_path / "events.csv"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.csv", "events.csv.manifest.json"]


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 100])
def test_chunk_conditions_cover_every_row_once_in_order_edge_times(chunk_rows):
    """NULL, +-infinity, times before 1970, equal times and neighbouring microseconds: the chunks, each
    sorted, give exactly ``ORDER BY ts, id`` (NULLS LAST)."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("""CREATE TABLE t AS SELECT * FROM (VALUES
            (TIMESTAMPTZ '2026-01-01 00:00:01', 'a'), (TIMESTAMPTZ '2026-01-01 00:00:01', 'b'),
            (TIMESTAMPTZ '2026-01-01 00:00:00.999999', 'c'), (TIMESTAMPTZ '2026-01-01 00:01:00', 'd'),
            (TIMESTAMPTZ 'infinity', 'e'), (TIMESTAMPTZ '-infinity', 'f'), (NULL, 'g'), (NULL, 'h'),
            (TIMESTAMPTZ '1960-05-05 10:10:10.5', 'i'), (TIMESTAMPTZ '1969-12-31 23:59:59.999999', 'j'),
            (TIMESTAMPTZ '2026-01-01 00:00:01', 'k')) v(ts, id)""")
        predicates = export_module.chunk_predicates(con, "SELECT * FROM t", {}, "ts", "TIMESTAMP WITH TIME ZONE",
                                                    chunk_rows)
        chunked = [row for p in predicates
                   for row in con.execute(f"SELECT id FROM t WHERE {p} ORDER BY ts, id").fetchall()]
        assert chunked == con.execute("SELECT id FROM t ORDER BY ts, id").fetchall()
        if chunk_rows <= 2:
            assert len(predicates) >= 4
    finally:
        con.close()
