"""Shared fixtures: a small simulated tenant (with its ground truth) and a demo database built from it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
SIM_END = datetime(2026, 11, 1, tzinfo=timezone.utc)
SIM_ARGS = {"seed": 11, "users": 60, "days": 6, "end": SIM_END}


def run_cli(*args: str, env: dict | None = None, check: bool = False,
            timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m ...`` in the repository as a separate process, the way a user would."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([PY, "-m", *args], cwd=ROOT, env=full_env, capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def scim_request_ids(db) -> set[str]:
    """The request ids a store holds (read-only, closed at once)."""
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        return {r[0] for r in con.execute("SELECT request_id FROM scim_requests").fetchall()}


def chart_figures(at) -> list[dict]:
    """The figures of the charts an AppTest run drew, in page order (pages/charts.py: one iframe document per
    chart or row of charts)."""
    from pages import charts

    return [figure for el in at.get("iframe") if "data-chart=" in el.proto.srcdoc
            for figure in charts.figures_from_html(el.proto.srcdoc)]


def html_tables(at) -> list[list[dict[str, str]]]:
    """The HTML tables (pages/html_table.py) an AppTest run drew: each a list of {header: cell text} rows."""
    return [table for el in at.get("html") for table in tables_in_html(el.proto.body)]


def tables_in_html(body: str) -> list[list[dict[str, str]]]:
    """Every table in an HTML text, as a list of {header: cell text} rows (entities decoded)."""
    from html.parser import HTMLParser

    class Tables(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tables, self.row, self.cell = [], None, None

        def handle_starttag(self, tag, attrs):
            if tag == "table":
                self.tables.append([])
            elif tag == "tr":
                self.row = []
            elif tag in ("td", "th"):
                self.cell = []

        def handle_endtag(self, tag):
            if tag in ("td", "th"):
                self.row.append("".join(self.cell))
                self.cell = None
            elif tag == "tr":
                self.tables[-1].append(self.row)

        def handle_data(self, data):
            if self.cell is not None:
                self.cell.append(data)

    parser = Tables()
    parser.feed(body)
    return [[dict(zip(header, row)) for row in rows] for header, *rows in parser.tables]


def store_from_events(root: Path, name: str, events: list[dict]) -> str:
    """A real store at ``root/name.duckdb`` holding exactly ``events``, loaded as one `ingest files` run."""
    from ingest.store import Store

    ndjson = root / f"{name}.ndjson"
    ndjson.write_text("\n".join(json.dumps(e) for e in events) + "\n", encoding="utf-8")
    db = str(root / f"{name}.duckdb")
    with Store.open(db) as store:
        run_id = store.start_run("files")
        store.load_clean_ndjson(ndjson, run_id=run_id)
        store.finish_run(run_id, "success")
    return db


@pytest.fixture(autouse=True)
def _readers_detach_after_each_call(monkeypatch):
    """In the test process, page queries detach the database after every call (PROVLENS_READ_KEEP_S=0).

    Tests here open the same files with connections of their own, which DuckDB refuses while this process
    keeps them attached. Processes the tests start (dashboard, readers, CLI) keep the product's default;
    tests/test_read_keep.py turns keeping on to test it."""
    from ingest import dbfile

    monkeypatch.delenv("PROVLENS_READ_KEEP_S", raising=False)
    monkeypatch.setattr(dbfile, "KEEP_DEFAULT_S", 0.0)
    yield
    dbfile.release()


@pytest.fixture(scope="session")
def sim():
    from simulator import generate

    return generate(**SIM_ARGS)


@pytest.fixture(scope="session")
def sim_dir(sim, tmp_path_factory) -> Path:
    from simulator import write

    out = tmp_path_factory.mktemp("sim")
    write(sim, out)
    return out


@pytest.fixture(scope="session")
def truth(sim) -> dict:
    return json.loads(json.dumps(sim.truth))


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory) -> Path:
    """A demo database built by the real CLI with the same simulator arguments as ``sim``."""
    db = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    run_cli("ingest", "demo", "--db", str(db), "--seed", str(SIM_ARGS["seed"]), "--users", str(SIM_ARGS["users"]),
            "--days", str(SIM_ARGS["days"]), "--end", SIM_END.isoformat(), "-q", check=True)
    return db
