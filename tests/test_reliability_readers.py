"""Readers beside writers: three processes run the dashboard's page queries in a tight loop while ten
`python -m ingest files` runs load new events one after another. No reader sees an error, no ingest
waits long for the database, and each ingest's events are visible to the next reader."""

from __future__ import annotations

import json
import subprocess
import time

from ingest.store import Store
from queries import db as qdb
from tests import reliability_harness as h

READERS = 3
INGESTS = 10
MAX_WAIT_S = 10.0  # a correctness bound (the writer is never starved), not a performance target


def test_page_queries_all_run_on_a_fresh_database(tmp_path):
    db = str(tmp_path / "empty.duckdb")
    Store.open(db).close()
    for name, extra in h.PAGE_QUERIES.items():
        qdb.run(db, name, None, **extra)  # the reader loop below must fail only on real problems


def test_readers_never_see_errors_while_ten_ingests_run(sim, tmp_path):
    db = str(tmp_path / "live.duckdb")
    Store.open(db).close()
    chunks = []
    for i in range(INGESTS):
        part = sim.events[i::INGESTS]
        path = tmp_path / f"chunk-{i}.ndjson"
        path.write_text("".join(json.dumps(e) + "\n" for e in part), encoding="utf-8")
        chunks.append((path, {e["id"] for e in part}))
    stop = tmp_path / "stop"
    readers = [subprocess.Popen([h.python(), "-m", "tests.reliability_harness", "reader", db, str(stop),
                                 str(tmp_path / f"reader-{i}.json")], cwd=h.ROOT, env=h.cli_env())
               for i in range(READERS)]
    try:
        time.sleep(1.5)  # the readers are importing pandas/duckdb and then looping
        expected: set[str] = set()
        waits = []
        for i, (path, ids) in enumerate(chunks):
            out = tmp_path / f"ingest-{i}.json"
            proc = h.run([h.python(), "-m", "tests.reliability_harness", "timed-ingest", str(out),
                          "files", "--db", db, "-q", str(path)], h.cli_env())
            assert proc.returncode == 0, proc.stderr[-2000:]
            result = json.loads(out.read_text())
            waits.append(sum(result["waits"]))
            assert sum(result["waits"]) < MAX_WAIT_S, (i, result["waits"])
            expected |= ids
            seen = qdb.run(db, "events")  # a fresh reader, as a page after the next cache miss
            assert set(seen["id"]) == expected, f"ingest {i}: new data not visible"
    finally:
        stop.touch()
        for r in readers:
            r.wait(timeout=60)
    totals = [json.loads((tmp_path / f"reader-{i}.json").read_text()) for i in range(READERS)]
    errors = [e for t in totals for e in t["errors"]]
    assert not errors, errors[:5]
    assert all(t["ok"] > len(h.PAGE_QUERIES) for t in totals), totals  # they really ran during the ingests
    print(f"readers: {[t['ok'] for t in totals]} queries, 0 errors; ingest lock waits (s): "
          f"{[round(w, 2) for w in waits]}")
