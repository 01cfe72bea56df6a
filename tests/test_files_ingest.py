"""``python -m ingest files``: every shape loads, re-loading is a no-op, bad input is reported."""

from __future__ import annotations

import gzip
import hashlib
import json

import duckdb
import pytest

from tests.conftest import run_cli


def _db_events(db) -> dict[str, str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return dict(con.execute("SELECT id, raw::VARCHAR FROM events").fetchall())
    finally:
        con.close()


def _rejects(db) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT file, position, reason FROM ingest_rejects ORDER BY file, position").fetchall()
    finally:
        con.close()


def test_pages_load_every_simulated_event_exactly_once(tmp_path, sim_dir, truth):
    db = tmp_path / "p.duckdb"
    proc = run_cli("ingest", "files", "--db", str(db), str(sim_dir / "graph"), "-q")
    assert proc.returncode == 0, proc.stderr
    ids = sorted(_db_events(db))
    assert len(ids) == truth["events"]["total"]
    assert hashlib.sha256("\n".join(ids).encode()).hexdigest() == truth["events"]["ids_sha256"]


def test_loading_the_same_files_twice_changes_nothing(tmp_path, sim_dir):
    db = tmp_path / "twice.duckdb"
    run_cli("ingest", "files", "--db", str(db), str(sim_dir / "graph"), "-q", check=True)
    first = _db_events(db)
    proc = run_cli("ingest", "files", "--db", str(db), str(sim_dir / "graph"), str(sim_dir / "events.ndjson"), "-q",
                   check=True)
    assert "0 new, 0 updated" in proc.stderr
    assert _db_events(db) == first


def test_array_ndjson_and_gzip_give_the_same_events(tmp_path, sim, sim_dir):
    arr = tmp_path / "array.json"
    arr.write_text(json.dumps(sim.events[:50]))
    gz = tmp_path / "events.ndjson.gz"
    with gzip.open(gz, "wt") as fh:
        for e in sim.events[50:120]:
            fh.write(json.dumps(e) + "\n")
    db = tmp_path / "shapes.duckdb"
    run_cli("ingest", "files", "--db", str(db), str(arr), str(gz), "-q", check=True)
    assert set(_db_events(db)) == {e["id"] for e in sim.events[:120]}


def test_bad_input_loads_the_good_events_and_reports_the_bad_ones(tmp_path, sim):
    good = sim.events[:5]
    page = tmp_path / "page.json"
    extra = dict(good[0], someFutureField={"nested": [1, 2]})
    no_id = {k: v for k, v in good[1].items() if k != "id"}
    page.write_text(json.dumps({"value": [extra, no_id, good[2]]}))
    truncated = tmp_path / "truncated.json"
    text = json.dumps({"value": [good[3], good[4]]}, indent=1)
    truncated.write_text(text[: len(text) - 300])  # cut inside the second event
    not_json = tmp_path / "notes.json"
    not_json.write_text("hello, this is not JSON\n")
    db = tmp_path / "bad.duckdb"
    proc = run_cli("ingest", "files", "--db", str(db), str(page), str(truncated), str(not_json), "-q")
    assert proc.returncode == 0, proc.stderr  # something was read: warnings, not failure
    assert "rejected" in proc.stderr
    events = _db_events(db)
    assert set(events) == {good[0]["id"], good[2]["id"], good[3]["id"]}
    assert json.loads(events[good[0]["id"]])["someFutureField"] == {"nested": [1, 2]}  # unknown fields kept
    rejects = _rejects(db)
    assert (str(page), "value[1]", "event has no id") in rejects
    assert any(f == str(truncated) and p == "value[1]" and "truncated" in r for f, p, r in rejects)
    assert any(f == str(not_json) for f, _p, _r in rejects)


def test_exit_code_is_non_zero_only_when_nothing_could_be_read(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("<html>502 Bad Gateway</html>")
    proc = run_cli("ingest", "files", "--db", str(tmp_path / "x.duckdb"), str(bad), str(tmp_path / "missing.json"))
    assert proc.returncode == 1
    assert "rejected" in proc.stderr and "Traceback" not in proc.stderr


def test_powershell_pascal_case_and_beta_shapes_are_accepted(tmp_path, sim):
    event = sim.events[0]

    def pascal(obj, keep=False):
        if isinstance(obj, dict):
            return {(k if keep else k[:1].upper() + k[1:]): pascal(v, k == "details") for k, v in obj.items()}
        if isinstance(obj, list):
            return [pascal(v) for v in obj]
        return obj

    ps = pascal(event)
    beta = {k: v for k, v in sim.events[1].items() if k not in ("provisioningAction", "provisioningStatusInfo")}
    beta["action"] = sim.events[1]["provisioningAction"].capitalize()
    beta["statusInfo"] = {"@odata.type": "#microsoft.graph.statusDetails",
                          "status": sim.events[1]["provisioningStatusInfo"]["status"]}
    f = tmp_path / "ps.json"
    f.write_text(json.dumps([ps, beta]))
    db = tmp_path / "ps.duckdb"
    run_cli("ingest", "files", "--db", str(db), str(f), "-q", check=True)
    con = duckdb.connect(str(db), read_only=True)
    rows = dict(con.execute("SELECT id, (action, status, service_principal_id) FROM events").fetchall())
    con.close()
    assert rows[event["id"]] == (event["provisioningAction"], event["provisioningStatusInfo"]["status"],
                                 event["servicePrincipal"]["id"])
    assert rows[sim.events[1]["id"]][:2] == (sim.events[1]["provisioningAction"],
                                             sim.events[1]["provisioningStatusInfo"]["status"])


@pytest.mark.parametrize("payload", [b"\xef\xbb\xbf", b""])
def test_ndjson_with_or_without_bom_and_with_crlf(tmp_path, sim, payload):
    f = tmp_path / "e.ndjson"
    f.write_bytes(payload + b"\r\n".join(json.dumps(e).encode() for e in sim.events[:3]) + b"\r\n\r\n")
    db = tmp_path / "bom.duckdb"
    run_cli("ingest", "files", "--db", str(db), str(f), "-q", check=True)
    assert set(_db_events(db)) == {e["id"] for e in sim.events[:3]}


def test_ndjson_fast_path_updates_changed_events_and_falls_back_on_bad_lines(tmp_path, sim):
    first = tmp_path / "a.ndjson"
    first.write_text("".join(json.dumps(e) + "\n" for e in sim.events[:20]))
    db = tmp_path / "fast.duckdb"
    run_cli("ingest", "files", "--db", str(db), str(first), "-q", check=True)
    changed = dict(sim.events[3], durationInMilliseconds=424242)
    second = tmp_path / "b.ndjson"
    second.write_text("".join(json.dumps(e) + "\n" for e in [changed, *sim.events[20:25]]))
    proc = run_cli("ingest", "files", "--db", str(db), str(second), "-q", check=True)
    assert "5 new, 1 updated" in proc.stderr
    assert json.loads(_db_events(db)[changed["id"]])["durationInMilliseconds"] == 424242
    dirty = tmp_path / "c.ndjson"
    dirty.write_text(json.dumps(sim.events[30]) + "\n{oops\n" + json.dumps(sim.events[31]) + "\n")
    proc = run_cli("ingest", "files", "--db", str(db), str(dirty), "-q")
    assert proc.returncode == 0 and "2 new" in proc.stderr
    assert (str(dirty), "line 2") in [(f, p) for f, p, _r in _rejects(db)]
