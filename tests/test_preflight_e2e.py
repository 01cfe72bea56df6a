"""Preflight end to end (issue 26): the real msgraph-sdk reads the simulated tenant's directory and job schema from
the fake Graph server (`python -m ingest preflight`), the findings equal the simulator's planted problems
(precision and recall 1.0, from `simulator/truth.py:preflight_truth`, which never evaluates an expression), and
after the simulated cycles are loaded (`ingest files`) every finding `--check` confirms matches what Entra logged for
that identity: no prediction is wrong.
"""

from __future__ import annotations

import csv

import duckdb

from ingest import exitcodes
from simulator.graph_server import DEFAULT_TOKEN, FakeGraphServer, GraphData
from tests.conftest import SIM_ARGS, SIM_END, run_cli

# What Entra logs for an identity when a finding of this kind comes true (a plain reading of the kinds, written
# apart from queries/preflight.py's own conditions).
LOGGED_AS = {"duplicate_user_name": {"failure"}, "non_work_email": {"failure"},
             "missing_required": {"skipped", "failure"}, "default_access_only": {"skipped"},
             "nested_group_only": {"skipped"}}


def _expected(truth: dict) -> set[tuple[str, str, str]]:
    out = set()
    for sp, t in truth["preflight"].items():
        for kind in ("nested_group_only", "default_access_only", "non_work_email"):
            out |= {(sp, kind, oid) for oid in t[kind]}
        out |= {(sp, "missing_required", oid) for oid in t["missing_required"]}
        out |= {(sp, "duplicate_user_name", oid) for group in t["duplicate_user_name"] for oid in group}
    return out


def test_preflight_finds_the_planted_problems_and_the_cycles_confirm_them(sim, sim_dir, tmp_path):
    db = tmp_path / "p.duckdb"
    env = {"PROVLENS_GRAPH_TOKEN": DEFAULT_TOKEN, "PROVLENS_GRAPH_RATE": "off"}
    with FakeGraphServer(GraphData.from_simulation(sim)) as server:
        for app in sim.truth["apps"]:
            proc = run_cli("ingest", "preflight", "--service-principal-id", app["service_principal_id"],
                           "--graph-url", server.base_url, "--auth", "token", "--db", str(db), env=env)
            assert proc.returncode == exitcodes.OK, proc.stderr
            assert DEFAULT_TOKEN not in proc.stdout + proc.stderr
    with duckdb.connect(str(db), read_only=True) as con:
        found = set(con.execute("SELECT r.service_principal_id, f.kind, f.source_id FROM preflight_findings f "
                                "JOIN preflight_runs r USING (run_id)").fetchall())
    expected = _expected(sim.truth)
    assert {kind for _, kind, _ in expected} == set(LOGGED_AS)  # every planted kind is there to be found
    assert found == expected  # precision and recall 1.0

    # The runs are dated to the start of the simulated period, as if preflight ran before the first cycle (the CLI
    # dates a run now); then the simulated cycles are loaded and the predictions checked.
    start = SIM_END.timestamp() - SIM_ARGS["days"] * 86400
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE preflight_runs SET started_at = to_timestamp(?)", [start])
    assert run_cli("ingest", "files", str(sim_dir / "graph"), "--db", str(db), "-q").returncode == exitcodes.OK
    check = run_cli("ingest", "preflight", "--check", "--db", str(db))
    assert check.returncode == exitcodes.OK, check.stderr
    out = tmp_path / "preflight.csv"
    assert run_cli("queries", "export", "preflight", "--db", str(db), "--out", str(out)).returncode == exitcodes.OK
    with out.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {(r["kind"], r["source_id"]) for r in rows} == {(kind, oid) for _, kind, oid in expected}
    assert [r for r in rows if r["status"] == "wrong"] == []
    confirmed = [r for r in rows if r["status"] == "confirmed"]
    assert confirmed
    # a duplicate comes true for its group (the one who got the userName first is written, the other refused)
    group = {}
    for r in rows:
        if r["kind"] == "duplicate_user_name":
            group.setdefault(r["user_name"].lower(), []).append(r["source_id"])
    with duckdb.connect(str(db), read_only=True) as con:
        for r in confirmed:
            ids = group[r["user_name"].lower()] if r["kind"] == "duplicate_user_name" else [r["source_id"]]
            logged = {s for (s,) in con.execute(
                "SELECT DISTINCT status FROM events WHERE list_contains(?, source_id) AND activity_time > "
                "to_timestamp(?)", [ids, start]).fetchall()}
            assert logged & LOGGED_AS[r["kind"]], (r["kind"], r["user_principal_name"], logged)
