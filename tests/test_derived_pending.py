"""Summaries a fast pull deferred (``summary_pending_runs``): the dashboard says they are behind,
and ``python -m ingest migrate`` catches them up to exactly what a full refresh computes."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
from streamlit.testing.v1 import AppTest

from ingest import exitcodes
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parent.parent
TABLES = ("derived_failures", "derived_cycles", "derived_identity_names")


def _rows(db: str) -> dict[str, list]:
    with duckdb.connect(db, read_only=True) as con:
        return {t: sorted(map(repr, con.execute(f"FROM {t}").fetchall())) for t in TABLES}


def _warnings(db: str, monkeypatch) -> list[str]:
    monkeypatch.setenv("PROVLENS_DB", db)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params["range"] = "all"
    at.run()
    assert not at.exception
    return [w.value for w in at.warning]


def test_deferred_summaries_are_announced_and_caught_up_by_migrate(demo_db, tmp_path, monkeypatch):
    db = str(tmp_path / "store.duckdb")
    shutil.copy(demo_db, db)
    complete = _rows(db)
    assert all(complete.values())
    assert not any("summaries are behind" in w for w in _warnings(db, monkeypatch))

    # As a pull killed after deferring its refresh leaves it: its events in, their summaries not.
    with duckdb.connect(db) as con:
        runs = [r[0] for r in con.execute("SELECT DISTINCT ingest_run_id FROM events ORDER BY 1").fetchall()]
        for table in TABLES:
            con.execute(f"DELETE FROM {table}")
        con.executemany("INSERT INTO summary_pending_runs VALUES (?)", [[r] for r in runs])
    assert any("summaries are behind" in w for w in _warnings(db, monkeypatch))

    done = run_cli("ingest", "migrate", "--db", db)
    assert done.returncode == exitcodes.OK, done.stderr
    assert "summaries brought up to date" in done.stderr
    assert _rows(db) == complete
    assert not any("summaries are behind" in w for w in _warnings(db, monkeypatch))
