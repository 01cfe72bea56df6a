"""``ingest scim DIR`` does not follow symbolic links found in the directory (issue 27: a link's target was
stored and exported) unless ``--follow-symlinks``; skipped links are reported."""

from __future__ import annotations

import json
import os

from tests.conftest import run_cli, scim_request_ids


def _write(path, prefix: str, n: int) -> None:
    path.write_text("".join(json.dumps({"ts": "2026-10-01T00:00:00Z", "request_id": f"{prefix}{i}", "method": "GET",
                                        "path": "/Users", "status": 200}) + "\n" for i in range(n)),
                    encoding="utf-8")


def _ids(db) -> set[str]:
    return scim_request_ids(db)


def test_links_in_a_trail_directory_are_skipped_and_reported(tmp_path):
    trail, outside = tmp_path / "trail", tmp_path / "outside"
    trail.mkdir()
    (outside / "sub").mkdir(parents=True)
    _write(trail / "audit.jsonl", "ok", 3)
    _write(outside / "secret.jsonl", "leak", 2)
    _write(outside / "sub" / "more.jsonl", "deep", 2)
    os.symlink(outside / "secret.jsonl", trail / "secret.jsonl")
    os.symlink(outside / "sub", trail / "linked-dir")

    db = tmp_path / "s.duckdb"
    proc = run_cli("ingest", "scim", "--db", str(db), "-q", "--no-correlate", str(trail), check=True)
    assert _ids(db) == {"ok0", "ok1", "ok2"}
    assert "skipped 2 symbolic link(s)" in proc.stderr and "secret.jsonl" in proc.stderr, proc.stderr
    out = tmp_path / "requests.csv"
    run_cli("queries", "export", "scim-requests", "--db", str(db), "--out", str(out), check=True)
    assert "leak" not in out.read_text(encoding="utf-8")
    # A glob does not follow them either.
    proc = run_cli("ingest", "scim", "--db", str(db), "-q", "--no-correlate", str(trail / "*.jsonl"), check=True)
    assert _ids(db) == {"ok0", "ok1", "ok2"} and "skipped 1 symbolic link(s)" in proc.stderr

    proc = run_cli("ingest", "scim", "--db", str(db), "-q", "--no-correlate", "--follow-symlinks", str(trail),
                   check=True)
    assert _ids(db) == {"ok0", "ok1", "ok2", "leak0", "leak1", "deep0", "deep1"}
    assert "skipped" not in proc.stderr
