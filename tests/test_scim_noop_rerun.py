"""A no-op ``ingest scim`` rerun costs a stat per unchanged file, not a read (issue 27: ~75 ms per file, 224 s
for 3,000). Proof that no file is read: after the first load every file's bytes are replaced in place (same
inode, same size) and its mtime put back; a rerun that opened any file would load the new request ids."""

from __future__ import annotations

import json
import os
import time

import duckdb

from tests.conftest import run_cli, scim_request_ids

FILES = 40


def _line(f: int, i: int, tag: str) -> str:
    return json.dumps({"ts": "2026-10-01T00:00:00Z", "request_id": f"{tag}{f:03d}-{i}", "method": "GET",
                       "path": "/Users", "status": 200}) + "\n"


def _ids(db) -> set[str]:
    return scim_request_ids(db)


def _scim(db, trail) -> str:
    return run_cli("ingest", "scim", "--db", str(db), "-q", "--no-correlate", str(trail), check=True).stderr


def test_unchanged_files_are_not_opened_and_changed_ones_are_read(tmp_path):
    trail = tmp_path / "trail"
    trail.mkdir()
    hour_ago = time.time_ns() - 3600 * 10**9
    for f in range(FILES):
        path = trail / f"audit-{f:03d}.jsonl"
        path.write_text(_line(f, 0, "a") + _line(f, 1, "a"), encoding="utf-8")
        os.utime(path, ns=(hour_ago, hour_ago))
    db = tmp_path / "s.duckdb"
    _scim(db, trail)
    assert len(_ids(db)) == 2 * FILES

    # Same inode, same size, same mtime, other bytes: only a read could notice.
    for f in range(FILES):
        path = trail / f"audit-{f:03d}.jsonl"
        st = path.stat()
        with open(path, "r+", encoding="utf-8") as fh:
            fh.write(_line(f, 0, "b") + _line(f, 1, "b"))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert path.stat().st_size == st.st_size and path.stat().st_ino == st.st_ino
    err = _scim(db, trail)
    assert f"{FILES} unchanged file(s) not opened" in err and "0 new line(s)" in err, err
    assert not any(i.startswith("b") for i in _ids(db))

    # A file that grew is read from where it was left; one modified just now (its mtime too recent to trust
    # within its granularity) is read again as well, and then trusted once it is old enough.
    grown = trail / "audit-000.jsonl"
    with open(grown, "a", encoding="utf-8") as fh:
        fh.write(_line(0, 2, "c"))
    err = _scim(db, trail)
    assert "c000-2" in _ids(db) and f"{FILES - 1} unchanged file(s)" in err, err
    err = _scim(db, trail)
    assert f"{FILES - 1} unchanged file(s)" in err and "audit-000" not in err  # recent: read (nothing new)
    os.utime(grown, ns=(hour_ago, hour_ago))
    _scim(db, trail)
    assert f"{FILES} unchanged file(s)" in _scim(db, trail)


def test_a_run_killed_mid_file_leaves_no_mtime(tmp_path):
    """Only a file read to its end keeps its mtime: a state written by a batch in the middle of a file (the run
    may be killed right after) must not let the next run skip the rest."""
    from ingest.scim import ingest as scim_ingest

    trail = tmp_path / "trail"
    trail.mkdir()
    path = trail / "audit.jsonl"
    path.write_text("".join(_line(0, i, "a") for i in range(10)), encoding="utf-8")
    hour_ago = time.time_ns() - 3600 * 10**9
    os.utime(path, ns=(hour_ago, hour_ago))
    db = tmp_path / "s.duckdb"
    old = scim_ingest.BATCH_LINES
    scim_ingest.BATCH_LINES = 3
    try:
        class Killed(Exception):
            pass

        flushes = []
        real_flush = scim_ingest._Batch.flush

        def flush_then_die(self, *args, **kw):
            real_flush(self, *args, **kw)
            flushes.append(1)
            if len(flushes) == 2:
                raise Killed

        scim_ingest._Batch.flush = flush_then_die
        try:
            scim_ingest.ingest_scim(str(db), [str(trail)], quiet=True, correlate=False)
        except Killed:
            pass
        finally:
            scim_ingest._Batch.flush = real_flush
    finally:
        scim_ingest.BATCH_LINES = old
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT mtime_ns FROM scim_file_state").fetchall() == [(None,)]
    con.close()
    _scim(db, trail)
    assert len(_ids(db)) == 10
