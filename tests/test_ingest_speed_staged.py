"""The staging source parses each line once (ingest/loading.py ``STAGED_SOURCE``, issue 7 B1): it must give
the same raw text and position as extracting them from the whole line, for awkward JSON too, and a null
event must still be rejected with its position."""

from __future__ import annotations

import json

import duckdb

from ingest.loading import STAGED_SOURCE, StagingFile, load_staged
from ingest.store import Store

# The extraction the staging source replaced: the reference.
REFERENCE = ("SELECT json->'$.raw' AS raw, json->>'$.pos' AS pos "
             "FROM read_json_objects($path, format = 'newline_delimited')")

AWKWARD = [
    '{"pos":"p#1","raw":{"id":"a1","activityDateTime":"2026-10-01T00:00:00Z","s":"caf\\u00e9 \\ud83d\\ude00 \\/ '
    '\\"q\\" \\t \\u2028","n":1.0e5,"f":0.1,"big":12345678901234567890123,"neg":-0.0,"e":[],"o":{},"t":true,"z":null}}',
    '{"pos":"p#2","raw":{"id":"a2","activityDateTime":"2026-10-01T00:00:01Z","d":{"k":1,"k":2},"nul":"\\u0000"}}',
    '{ "pos" : "p#3" , "raw" : { "id" : "a3" , "activityDateTime" : "2026-10-01T00:00:02Z", "sp" : [ {"id": "x"} ] } }',
    '{"pos":"p#4","raw":null}',
    '{"raw":{"id":"a5","activityDateTime":"2026-10-01T00:00:03Z"},"pos":"p#5","other":[1,2]}',
]


def test_staged_source_equals_extracting_from_the_line(tmp_path, sim):
    path = tmp_path / "staged.ndjson"
    lines = AWKWARD + [json.dumps({"pos": f"sim#{i}", "raw": e}) for i, e in enumerate(sim.events[:500])]
    path.write_text("\n".join(lines) + "\n")
    con = duckdb.connect()
    ours = con.execute(f"SELECT raw::VARCHAR, pos FROM ({STAGED_SOURCE})", {"path": [str(path)]}).fetchall()
    reference = con.execute(f"SELECT raw::VARCHAR, pos FROM ({REFERENCE})", {"path": [str(path)]}).fetchall()
    assert len(ours) == len(lines) and ours == reference


def test_a_null_event_is_rejected_with_its_position(tmp_path, sim):
    staging = StagingFile(str(tmp_path))
    good = sim.events[:20]
    for i, e in enumerate([*good, None]):
        staging.write(json.dumps({"pos": f"page 1#value[{i}]", "raw": e}).encode() + b"\n")
    try:
        with Store.open(str(tmp_path / "d.duckdb")) as store:
            run = store.start_run("graph")
            result = load_staged(store, staging, run_id=run)
            rejects = store.con.execute("SELECT file, position, reason, excerpt FROM ingest_rejects").fetchall()
    finally:
        staging.discard()
    assert (result.read, result.new, result.invalid) == (21, 20, 1)
    assert rejects == [("page 1", "value[20]", "event has no id", "null")]
