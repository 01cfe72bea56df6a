"""SCIM audit-trail ingest through the real CLI against the simulator's records and ground truth:
every request loads once, bad lines are rejected with the right reason, re-runs are no-ops, appended
lines, rotated, truncated and gzipped files, CSV, and a mapping for a foreign log shape."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import duckdb
import pytest

from ingest import exitcodes
from simulator.scim_faults import REASONS, write_csv_trail, write_faulty_trail
from tests.conftest import ROOT, run_cli


def _ingest(db: Path, *paths: str, extra: tuple[str, ...] = ()) -> object:
    return run_cli("ingest", "scim", "--db", str(db), "-q", *extra, *paths)


def _ids(db: Path) -> list[str]:
    with duckdb.connect(str(db), read_only=True) as con:
        return [r[0] for r in con.execute("SELECT request_id FROM scim_requests").fetchall()]


def _rejects(db: Path) -> list[tuple[str, int, str, str]]:
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT file, position, reason, excerpt FROM ingest_rejects "
                           "WHERE source = 'scim'").fetchall()
    return [(f, int(p.split()[1]) if p.startswith("line ") else -1, r, e) for f, p, r, e in rows]


def _write_lines(path: Path, records: list[dict], mode: str = "w") -> None:
    with path.open(mode, encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec) + "\n")


def test_every_request_loads_once_and_rerun_is_noop(sim_dir, sim, truth, tmp_path):
    db = tmp_path / "s.duckdb"
    first = _ingest(db, str(sim_dir / "scim-audit.jsonl"))
    assert first.returncode == exitcodes.OK, first.stderr
    ids = _ids(db)
    assert len(ids) == len(set(ids)) == truth["scim"]["total"]
    assert set(ids) == {r["request_id"] for r in sim.scim_records}
    with duckdb.connect(str(db), read_only=True) as con:
        by_op = dict(con.execute("SELECT operation, count(*) FROM scim_requests GROUP BY 1").fetchall())
        by_status = dict(con.execute("SELECT status::VARCHAR, count(*) FROM scim_requests GROUP BY 1").fetchall())
        probes = con.execute("SELECT count(*) FROM scim_requests WHERE is_probe").fetchone()[0]
    assert by_op == truth["scim"]["by_operation"]
    assert by_status == truth["scim"]["by_status"]
    assert probes == truth["scim"]["probes"]
    again = _ingest(db, str(sim_dir / "scim-audit.jsonl"))
    assert again.returncode == exitcodes.OK
    assert "0 new line(s)" in again.stderr
    assert sorted(_ids(db)) == sorted(ids)


def test_bad_lines_are_rejected_with_reason_and_good_lines_load(sim, tmp_path):
    trail = tmp_path / "audit.jsonl"
    expected = write_faulty_trail(sim.scim_records, trail, seed=5, every=20)
    db = tmp_path / "f.duckdb"
    proc = _ingest(db, str(trail))
    assert proc.returncode == exitcodes.OK, proc.stderr
    assert "rejected" in proc.stderr and "warning" in proc.stderr
    assert sorted(_ids(db)) == sorted(expected["loaded"])  # every good line, the BOM/CRLF ones included
    rejects = {line: (reason, excerpt) for _f, line, reason, excerpt in _rejects(db)}
    assert sorted(rejects) == sorted(e["line"] for e in expected["rejects"])  # nothing else, no blank line
    for e in expected["rejects"]:
        reason, excerpt = rejects[e["line"]]
        assert reason.startswith(REASONS[e["kind"]]), (e, reason)
        assert len(excerpt) <= 203
    assert expected["pending"] not in _ids(db)  # the unfinished last line waits
    with trail.open("ab") as fh:
        fh.write(b"\n")  # the writer finishes the line
    proc = _ingest(db, str(trail))
    assert proc.returncode == exitcodes.OK
    assert sorted(_ids(db)) == sorted(expected["loaded"] + [expected["pending"]])
    assert len(_rejects(db)) == len(expected["rejects"])  # bad lines are not rejected twice


def test_strict_exits_7_and_missing_path_fails(sim, tmp_path):
    trail = tmp_path / "audit.jsonl"
    write_faulty_trail(sim.scim_records[:200], trail, seed=1, every=50)
    proc = _ingest(tmp_path / "x.duckdb", str(trail), extra=("--strict",))
    assert proc.returncode == exitcodes.STRICT
    proc = _ingest(tmp_path / "y.duckdb", str(tmp_path / "nope" / "*.jsonl"))
    assert proc.returncode == exitcodes.FAILED
    assert "Traceback" not in proc.stderr


def test_csv_variant_loads_the_same_rows_as_json(sim, sim_dir, tmp_path):
    records = sim.scim_records
    csv_path = tmp_path / "audit.csv"
    expected = write_csv_trail(records, csv_path, short_rows=(3, 40))
    db_csv, db_json = tmp_path / "c.duckdb", tmp_path / "j.duckdb"
    assert _ingest(db_csv, str(csv_path)).returncode == exitcodes.OK
    assert _ingest(db_json, str(sim_dir / "scim-audit.jsonl")).returncode == exitcodes.OK
    cols = ("request_id, ts, method, path, query, status, duration_ms, operation, resource_id, external_id, "
            "user_name, scim_type, error_detail, email_domains, email_types, active_after, is_probe, tenant")
    with duckdb.connect(str(db_csv), read_only=True) as con:
        got = {r[0]: r for r in con.execute(f"SELECT {cols} FROM scim_requests").fetchall()}
    with duckdb.connect(str(db_json), read_only=True) as con:
        want = {r[0]: r for r in con.execute(f"SELECT {cols} FROM scim_requests").fetchall()}
    assert set(got) == set(expected["loaded"])
    for rid in got:
        assert got[rid] == want[rid]
    rejects = _rejects(db_csv)
    assert sorted(line for _f, line, _r, _e in rejects) == [e["line"] for e in expected["rejects"]]
    assert all(reason.startswith(REASONS["csv_short_row"]) for _f, _l, reason, _e in rejects)


def test_csv_missing_required_column_rejects_every_row(sim, tmp_path):
    csv_path = tmp_path / "nostatus.csv"
    write_csv_trail(sim.scim_records[:30], csv_path, drop_column="status")
    db = tmp_path / "m.duckdb"
    proc = _ingest(db, str(csv_path))
    assert proc.returncode == exitcodes.FAILED or proc.returncode == exitcodes.OK
    assert _ids(db) == []
    rejects = _rejects(db)
    assert len(rejects) == 30
    assert all(reason == "missing required field 'status'" for _f, _l, reason, _e in rejects)


def test_appended_lines_load_and_only_they(sim, tmp_path):
    records = sim.scim_records
    trail = tmp_path / "audit.jsonl"
    _write_lines(trail, records[:300])
    db = tmp_path / "a.duckdb"
    assert _ingest(db, str(tmp_path)).returncode == exitcodes.OK  # a directory
    _write_lines(trail, records[300:500], mode="a")
    proc = _ingest(db, str(tmp_path / "*.jsonl"))  # a glob
    assert "200 new line(s): 200 request(s) loaded, 0 already loaded" in proc.stderr
    assert sorted(_ids(db)) == sorted(r["request_id"] for r in records[:500])


def test_rotated_truncated_and_gzipped_files(sim, tmp_path):
    records = sim.scim_records
    logs = tmp_path / "logs"
    logs.mkdir()
    live = logs / "audit.jsonl"
    db = tmp_path / "r.duckdb"
    _write_lines(live, records[:200])
    assert _ingest(db, str(logs)).returncode == exitcodes.OK
    # The server writes 50 more lines, then rotates: rename, new file at the old path.
    _write_lines(live, records[200:250], mode="a")
    os.rename(live, logs / "audit.jsonl.1")
    _write_lines(live, records[250:320])
    proc = _ingest(db, str(logs))
    assert "120 new line(s): 120 request(s) loaded, 0 already loaded" in proc.stderr, proc.stderr
    # The rotated file is compressed later: recognised by content, nothing is read again.
    with open(logs / "audit.jsonl.1", "rb") as src, gzip.open(logs / "audit.jsonl.1.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.unlink(logs / "audit.jsonl.1")
    proc = _ingest(db, str(logs))
    assert "0 new line(s)" in proc.stderr, proc.stderr
    # The live file is truncated and re-created with other content: read from the start.
    _write_lines(live, records[320:340])
    proc = _ingest(db, str(logs))
    assert "20 new line(s): 20 request(s) loaded" in proc.stderr, proc.stderr
    ids = _ids(db)
    assert len(ids) == len(set(ids))
    assert set(ids) == {r["request_id"] for r in records[:340]}
    assert _rejects(db) == []


def test_gzip_file_loads(sim, sim_dir, tmp_path):
    gz = tmp_path / "audit.jsonl.gz"
    with open(sim_dir / "scim-audit.jsonl", "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    db = tmp_path / "g.duckdb"
    assert _ingest(db, str(gz)).returncode == exitcodes.OK
    assert len(_ids(db)) == len(sim.scim_records)


def test_example_mapping_loads_the_access_log_shape(tmp_path):
    db = tmp_path / "m.duckdb"
    mapping = ROOT / "examples" / "mappings" / "json-access-log.toml"
    sample = ROOT / "examples" / "mappings" / "json-access-log.sample.jsonl"
    proc = _ingest(db, str(sample), extra=("--mapping", str(mapping)))
    assert proc.returncode == exitcodes.OK, proc.stderr
    with duckdb.connect(str(db), read_only=True) as con:
        rows = {r[0]: r[1:] for r in con.execute(
            "SELECT request_id, operation, status, user_name, resource_id, external_id, scim_type, email_domains, "
            "active_after, is_probe, raw::VARCHAR FROM scim_requests").fetchall()}
    source = [json.loads(line) for line in sample.read_text().splitlines()]
    assert set(rows) == {s["request"]["id"] for s in source}
    assert rows["a-1"][0] == "probe" and rows["a-1"][8] is True
    assert rows["a-2"][:3] == ("user.search", 200, "jane@acme.com")
    assert rows["a-3"][:5] == ("user.create", 201, "jane@acme.com", "u_8842", "e3b2b242-4ccb-4cf1-9b8b-004cf034a458")
    assert rows["a-4"][5:7] == ("invalidValue", ["gmail.com"])
    assert rows["a-5"][0] == "user.deactivate" and rows["a-5"][7] is False
    raw = " ".join(r[9] for r in rows.values())
    assert "not-a-real-token" not in raw and "max.private" not in raw  # secrets and addresses are not kept


def test_bad_mapping_is_a_usage_error(tmp_path):
    bad = tmp_path / "m.toml"
    bad.write_text('[fields]\nnot_a_field = "$.x"\n')
    proc = _ingest(tmp_path / "b.duckdb", str(tmp_path), extra=("--mapping", str(bad)))
    assert proc.returncode == exitcodes.USAGE
    assert "not_a_field" in proc.stderr


@pytest.mark.parametrize("section_extra", ['strict = true'])
def test_run_source_type_scim(sim, tmp_path, section_extra):
    trail = tmp_path / "audit.jsonl"
    expected = write_faulty_trail(sim.scim_records[:120], trail, seed=2, every=40, unfinished_tail=False)
    config = tmp_path / "provlens.toml"
    config.write_text(f'db = "{tmp_path / "run.duckdb"}"\n[[sources]]\ntype = "scim"\npaths = ["{trail}"]\n'
                      f"{section_extra}\n")
    proc = run_cli("ingest", "run", "--config", str(config), "-q")
    assert proc.returncode == exitcodes.STRICT, proc.stderr
    assert sorted(_ids(tmp_path / "run.duckdb")) == sorted(expected["loaded"])
