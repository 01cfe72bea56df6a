"""The correlation's candidate search runs one chunk of request time at a time (B8: bounded joins).
Chunking must not change a single row: hourly chunks (most pairs near a chunk edge somewhere) give the
same table as one chunk over all time, and both find the truth's pairs."""

from __future__ import annotations

import shutil

import duckdb

from ingest.correlate import DEFAULT_WINDOW_S, correlation_statements, request_chunks
from ingest.store import Store

COLUMNS = ("event_id, request_id, match_key, match_class, detail, suspicious, event_time, request_ts, delta_s, "
           "service_principal_id")


def _table(db) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(f"SELECT {COLUMNS} FROM correlation ORDER BY ALL").fetchall()
    finally:
        con.close()


def _recompute(db, chunks) -> None:
    with Store.open(str(db)) as store:
        store.replace_correlation(correlation_statements(DEFAULT_WINDOW_S, DEFAULT_WINDOW_S, chunks))


def test_request_chunks_cover_every_request_time():
    assert request_chunks(None, None) == [(0, 0)]
    chunks = request_chunks(5_000, 20_000, chunk_ms=7_000)
    assert chunks[0][0] <= 5_000 and chunks[-1][1] > 20_000
    assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:]))  # contiguous, no gaps or overlaps


def test_hourly_chunks_give_the_same_correlation_as_one_chunk(demo_db, truth, tmp_path):
    db = tmp_path / "chunks.duckdb"
    shutil.copy(demo_db, db)
    _recompute(db, None)
    whole = _table(db)
    con = duckdb.connect(str(db), read_only=True)
    first_ms, last_ms = con.execute("SELECT epoch_ms(min(ts)), epoch_ms(max(ts)) FROM scim_requests").fetchone()
    con.close()
    hourly = request_chunks(first_ms, last_ms, chunk_ms=3_600_000)
    assert len(hourly) > 24
    _recompute(db, hourly)
    assert _table(db) == whole
    pairs = {(r[0], r[1]) for r in whole if r[0] and r[1]}
    want = {tuple(p) for p in truth["scim"]["pairs"]}
    assert len(pairs & want) >= 0.99 * len(want)
