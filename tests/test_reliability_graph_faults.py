"""Hostile Graph responses: every row of the fault matrix (tests/reliability_harness.py FAULT_MATRIX, the
table in docs/reliability.md) run through `python -m ingest graph` against the fake Graph server, each
with its tested outcome: retried and completed with nothing lost, or stopped with a clear message and a
specific exit code with the database's events and watermarks unchanged."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest

from ingest.graph.pacing import parse_retry_after
from tests import reliability_harness as h


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _run_case(case: h.FaultCase, data, base_db, tmp_path, sps) -> dict:
    from simulator.graph_server import FakeGraphServer

    db = tmp_path / f"case-{h.FAULT_MATRIX.index(case)}.duckdb"
    shutil.copy(base_db, db)
    before = {"events": h.events(db), "watermarks": h.watermarks(db)}
    with FakeGraphServer(data, token=h.TOKEN, faults=list(case.plan)) as server:
        argv = h.graph_argv(str(db), server.base_url, sps, since=None,
                            extra=("--top", "5", "--no-jobs", "--max-wait", str(case.max_wait)))
        proc = h.run(argv, h.cli_env(PROVLENS_GRAPH_TOKEN=h.TOKEN))
        statuses = [s for _, s in server.provisioning_requests()]
        fired = [f.fired for f in server.faults.faults if f.kind != "skiptoken"]
    log = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    return {"proc": proc, "db": db, "before": before, "statuses": statuses, "fired": fired, "log": log}


@pytest.fixture(scope="module")
def outcomes(sim_small, tmp_path_factory):
    """Run every case (concurrently: most of the time is Retry-After waiting) from the same start state."""
    from simulator.graph_server import FakeGraphServer, GraphData

    sim, sps = sim_small
    data = GraphData.from_simulation(sim)
    tmp = tmp_path_factory.mktemp("faults")
    base = tmp / "base.duckdb"
    with FakeGraphServer(data, token=h.TOKEN) as server:
        proc = h.run(h.graph_argv(str(base), server.base_url, sps, until=h.GRAPH_MID, extra=("--no-jobs",)),
                     h.cli_env(PROVLENS_GRAPH_TOKEN=h.TOKEN))
    assert proc.returncode == 0, proc.stderr[-2000:]
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = {c.name: pool.submit(_run_case, c, data, base, tmp, sps) for c in h.FAULT_MATRIX}
        return {name: f.result() for name, f in futures.items()}


@pytest.fixture(scope="module")
def sim_small():
    from simulator import generate

    sim = generate(**h.SMALL_SIM)
    return sim, sorted({e["servicePrincipal"]["id"] for e in sim.events})


def _truth_ids(sim, before: datetime, sp: str | None = None) -> set[str]:
    return {e["id"] for e in sim.events if _t(h.GRAPH_SINCE) <= _t(e["activityDateTime"]) < before
            and (sp is None or e["servicePrincipal"]["id"] == sp)}


@pytest.mark.parametrize("case", h.FAULT_MATRIX, ids=[c.name for c in h.FAULT_MATRIX])
def test_fault_has_its_documented_outcome(case, outcomes, sim_small):
    sim, sps = sim_small
    got = outcomes[case.name]
    proc, db = got["proc"], got["db"]
    assert proc.returncode == case.exit_code, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert all(got["fired"]), f"a fault of {case.plan} never fired"
    for word in case.words:
        assert word in proc.stderr, (word, proc.stderr[-2000:])
    ids = h.event_ids(db)
    assert len(ids) == len(set(ids))
    marks = h.watermarks(db)
    if case.exit_code == 0:  # retried and completed: every event of the window, once
        assert set(ids) == _truth_ids(sim, _t(h.GRAPH_UNTIL))
        assert marks == {f"default/{sp}": _t(h.GRAPH_UNTIL) for sp in sps}
        assert any(s != 200 for s in got["statuses"]) or case.plan[0].split(":")[1] in ("truncated", "html",
                                                                                     "empty")
        if case.waited is not None:
            waits = [e["wait_s"] for e in got["log"] if e.get("event") == "retry"]
            assert waits and abs(waits[0] - case.waited) < 0.01, waits
        if "skiptoken" in case.plan[0]:
            assert 400 in got["statuses"]
    elif case.mid_run:  # stopped mid-way: what was committed stays, the watermark covers only that
        assert marks != got["before"]["watermarks"]
        stored = set(ids)
        for scope, mark in marks.items():
            assert _truth_ids(sim, mark, scope.split("/", 1)[1]) <= stored
        assert h.query(db, "SELECT outcome FROM ingest_runs ORDER BY run_id DESC LIMIT 1")[0][0] in (
            "partial", "failed")
    else:  # stopped before anything changed
        assert h.events(db) == got["before"]["events"]
        assert marks == got["before"]["watermarks"]


def test_retry_after_forms_are_read_as_documented():
    assert parse_retry_after("1") == 1.0
    assert parse_retry_after("2.128") == 2.128
    assert parse_retry_after("30,120") == pytest.approx(30.12)  # the matrix row's wording relies on this
    assert parse_retry_after("600") == 600.0
