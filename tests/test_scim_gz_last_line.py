"""A .gz audit file is complete once closed: its last line loads (or is rejected with a reason) even without a
final newline (issue 27: 49 of 50 loaded, the last one never). Only a plain file that may still grow holds an
unterminated last line back."""

from __future__ import annotations

import gzip
import json

import duckdb

from tests.conftest import run_cli, scim_request_ids


def _lines(n: int, prefix: str = "r") -> list[str]:
    return [json.dumps({"ts": f"2026-10-01T00:{i // 60:02d}:{i % 60:02d}Z", "request_id": f"{prefix}{i}",
                        "method": "GET", "path": "/Users", "status": 200}) for i in range(n)]


def _ids(db) -> set[str]:
    return scim_request_ids(db)


def _scim(db, *paths) -> str:
    return run_cli("ingest", "scim", "--db", str(db), "-q", "--no-correlate", *map(str, paths), check=True).stderr


def test_last_line_of_a_gz_without_newline_loads_once(tmp_path):
    db, gz = tmp_path / "s.duckdb", tmp_path / "audit.jsonl.gz"
    gz.write_bytes(gzip.compress("\n".join(_lines(50)).encode()))  # no final newline
    err = _scim(db, gz)
    assert _ids(db) == {f"r{i}" for i in range(50)}, err
    assert "unfinished" not in err
    err = _scim(db, gz)  # a re-run reads nothing again
    assert "0 new line(s)" in err and len(_ids(db)) == 50


def test_bad_last_line_of_a_gz_is_rejected_with_a_reason(tmp_path):
    db, gz = tmp_path / "s.duckdb", tmp_path / "audit.jsonl.gz"
    gz.write_bytes(gzip.compress(("\n".join(_lines(5)) + '\n{"ts": "2026-10-01T00:00:00Z", "request_').encode()))
    _scim(db, gz)
    assert len(_ids(db)) == 5
    con = duckdb.connect(str(db), read_only=True)
    rejects = con.execute("SELECT position, reason FROM ingest_rejects").fetchall()
    con.close()
    assert len(rejects) == 1 and rejects[0][0] == "line 6" and "JSON" in rejects[0][1], rejects


def test_plain_file_holds_its_unfinished_line_until_rotated_into_a_gz(tmp_path):
    db, plain = tmp_path / "s.duckdb", tmp_path / "audit.jsonl"
    text = "\n".join(_lines(50)).encode()
    plain.write_bytes(text)  # still being written: the last line has no newline yet
    err = _scim(db, plain)
    assert len(_ids(db)) == 49 and "unfinished last line" in err, err
    # Rotation: the file is renamed and gzipped as it was; its last line is now complete.
    plain.unlink()
    (tmp_path / "audit.jsonl.1.gz").write_bytes(gzip.compress(text))
    _scim(db, tmp_path / "audit.jsonl.1.gz")
    assert _ids(db) == {f"r{i}" for i in range(50)}
