"""No room to write (issue 27, item 10): an ingest whose commit cannot be written reports the real cause (the
COMMIT's error, not "cannot rollback - no transaction is active"), records its run as failed, exits 6, keeps what
was committed, and a re-run with room finishes the work without duplicates. The disk fills up through a file-size
limit on the ingest's process (RLIMIT_FSIZE): its writes past it fail as a full disk's do."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess

import duckdb

from ingest import exitcodes
from tests.conftest import PY, ROOT, run_cli


def _rows(db) -> tuple[int, list[tuple]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return (con.execute("SELECT count(*) FROM events").fetchone()[0],
                con.execute("SELECT outcome, message FROM ingest_runs ORDER BY run_id").fetchall())


def test_a_commit_with_no_room_fails_the_run_with_its_cause_and_a_rerun_finishes(sim, tmp_path):
    events = sorted(sim.events, key=lambda e: e["activityDateTime"])
    first, rest = tmp_path / "first.ndjson", tmp_path / "rest.ndjson"
    first.write_text("".join(json.dumps(e) + "\n" for e in events[:100]))
    rest.write_text("".join(json.dumps(e) + "\n" for e in events))
    db = tmp_path / "store.duckdb"
    run_cli("ingest", "files", "--db", str(db), str(first), "-q", check=True)
    room = 150_000  # bytes a file may grow to: room for the run record's log, not for the rest's rows

    def no_room() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (room, room))

    full = subprocess.run([PY, "-m", "ingest", "files", "--db", str(db), str(rest)], cwd=ROOT, capture_output=True,
                          text=True, preexec_fn=no_room, timeout=300, env=dict(os.environ))
    assert full.returncode == exitcodes.DATABASE, full.stderr
    assert "no room to write" in full.stderr and "File too large" in full.stderr, full.stderr
    assert "no transaction is active" not in full.stderr and "Traceback" not in full.stderr
    count, runs = _rows(db)
    assert count == 100  # what the first run committed is kept
    assert runs[-1][0] == "failed" and "File too large" in runs[-1][1], runs

    again = run_cli("ingest", "files", "--db", str(db), str(rest))
    assert again.returncode == exitcodes.OK, again.stderr
    with duckdb.connect(str(db), read_only=True) as con:
        ids = [r[0] for r in con.execute("SELECT id FROM events").fetchall()]
        identity_rows = con.execute("SELECT count(*), count(DISTINCT id) FROM derived_identity_events").fetchone()
    assert sorted(ids) == sorted(e["id"] for e in events)
    assert identity_rows == (len(events), len(events))
