"""A corrupt or foreign database file gives every command a clear error and is never overwritten: the
ingest subcommands, the export CLI and the dashboard all leave it byte-identical."""

from __future__ import annotations

import subprocess

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from pages.common import md_text
from tests import reliability_harness as h
from tests.conftest import ROOT


def _make(kind: str, path) -> None:
    if kind == "corrupt":
        path.write_bytes(b"DUCK" + bytes(range(256)) * 64)
    else:
        con = duckdb.connect(str(path))
        con.execute("CREATE TABLE invoices (id INTEGER, amount DECIMAL(10, 2))")
        con.execute("INSERT INTO invoices VALUES (1, 9.99)")
        con.close()


def _commands(db: str, tmp) -> dict[str, list[str]]:
    events = tmp / "e.ndjson"
    events.write_text('{"id":"e1","activityDateTime":"2026-10-01T00:00:00Z"}\n', encoding="utf-8")
    audit = tmp / "a.jsonl"
    audit.write_text('{"ts":"2026-10-01T00:00:00Z","request_id":"r1","method":"GET","path":"/Users",'
                     '"status":200}\n', encoding="utf-8")
    config = tmp / "provlens.toml"
    config.write_text(f'db = "{db}"\n[[sources]]\ntype = "files"\npaths = ["{events}"]\n', encoding="utf-8")
    py = [h.python(), "-m"]
    return {
        "ingest files": py + ["ingest", "files", "--db", db, "-q", str(events)],
        "ingest graph": py + ["ingest", "graph", "--db", db, "--graph-url", "http://127.0.0.1:9/v1.0", "--rate",
                              "off", "--max-wait", "1", "-q"],
        "ingest scim": py + ["ingest", "scim", "--db", db, "-q", str(audit)],
        "ingest demo": py + ["ingest", "demo", "--db", db, "--users", "25", "--days", "1", "-q"],
        "ingest run": py + ["ingest", "run", "--config", str(config), "-q"],
        "queries export": py + ["queries", "export", "events", "--db", db, "--out", str(tmp / "out.csv")],
    }


@pytest.mark.parametrize("kind", ["corrupt", "foreign"])
def test_every_command_refuses_and_leaves_the_file_untouched(kind, tmp_path):
    db = tmp_path / f"{kind}.duckdb"
    _make(kind, db)
    before = h.file_sha256(db)
    env = h.cli_env(PROVLENS_GRAPH_TOKEN=h.TOKEN)
    procs = {name: subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True) for name, argv in _commands(str(db), tmp_path).items()}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode != 0, (name, err)
        assert "Traceback" not in err, (name, err)
        assert str(db) in err or db.name in err, (name, err)
        assert any(w in err for w in ("not a provlens", "not a readable DuckDB", "does not hold demo data",
                                      "cannot open", "cannot read", "cannot answer")), (name, err)
        if name.startswith("ingest") and name != "ingest run":
            assert proc.returncode == 6, (name, proc.returncode, err)  # exitcodes.DATABASE
    assert h.file_sha256(db) == before
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("kind", ["corrupt", "foreign"])
def test_dashboard_shows_a_clear_error_and_leaves_the_file_untouched(kind, tmp_path, monkeypatch):
    db = tmp_path / f"{kind}.duckdb"
    _make(kind, db)
    before = h.file_sha256(db)
    monkeypatch.setenv("PROVLENS_DB", str(db))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    assert at.error and md_text(str(db)) in at.error[0].value  # the path, markdown-escaped (shown as typed)
    assert h.file_sha256(db) == before
