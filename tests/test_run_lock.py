"""`ingest run`: sources from provlens.toml, and the lock that makes a concurrent run exit 0 at once."""

from __future__ import annotations

import time

import duckdb

from ingest import exitcodes
from ingest.run import RunLock
from simulator.graph_server import FakeGraphServer, GraphData
from tests.conftest import run_cli
from tests.test_graph_pull import SINCE, UNTIL, sp_ids

TOKEN = "run-test-token"


def write_config(path, server, sim, sim_dir) -> None:
    sps = ", ".join(f'"{s}"' for s in sp_ids(sim))
    path.write_text(f"""
[[sources]]
type = "graph"
graph_url = "{server.base_url}"
service_principal_ids = [{sps}]
since = "{SINCE}"
until = "{UNTIL}"
rate = "off"
slice = "7d"

[[sources]]
type = "files"
paths = ["{sim_dir / 'graph'}"]
""", encoding="utf-8")


def test_run_all_sources_then_lock_blocks_a_second_run(sim, sim_dir, tmp_path):
    db = tmp_path / "r.duckdb"
    config = tmp_path / "provlens.toml"
    with FakeGraphServer(GraphData.from_simulation(sim), token=TOKEN) as server:
        write_config(config, server, sim, sim_dir)
        lock = RunLock(f"{db}.run.lock")
        assert lock.acquire()
        try:
            started = time.monotonic()
            busy = run_cli("ingest", "run", "--config", str(config), "--db", str(db),
                           env={"PROVLENS_GRAPH_TOKEN": TOKEN})
            assert time.monotonic() - started < 30
        finally:
            lock.release()
        assert busy.returncode == exitcodes.OK
        assert "another provlens run holds" in busy.stderr
        assert not db.exists()  # it did nothing

        proc = run_cli("ingest", "run", "--config", str(config), "--db", str(db), "--log-format", "json",
                       env={"PROVLENS_GRAPH_TOKEN": TOKEN})
    assert proc.returncode == exitcodes.OK, proc.stderr
    con = duckdb.connect(str(db), read_only=True)
    total = con.execute("SELECT count(*), count(DISTINCT id) FROM events").fetchone()
    sources = {r[0] for r in con.execute("SELECT source FROM ingest_runs WHERE outcome = 'success'").fetchall()}
    con.close()
    assert total == (sim.truth["events"]["total"], sim.truth["events"]["total"])
    assert sources == {"graph", "graph-audit", "files"}  # a graph source pulls the directory audit log too
    con = duckdb.connect(str(db), read_only=True)
    audits = con.execute("SELECT count(*) FROM directory_audits").fetchone()[0]
    con.close()
    assert audits == sim.truth["directory_audits"]["provisioning_total"]


def test_run_without_sources_is_a_config_error(tmp_path):
    config = tmp_path / "provlens.toml"
    config.write_text('db = "x.duckdb"\n', encoding="utf-8")
    proc = run_cli("ingest", "run", "--config", str(config), "--db", str(tmp_path / "x.duckdb"))
    assert proc.returncode == exitcodes.USAGE and "no sources configured" in proc.stderr
