"""`ingest graph` against the fake Graph server through the real msgraph-sdk: completeness, overlap,
faults (each with its documented outcome, nothing lost), exit codes."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import duckdb
import pytest

from ingest import exitcodes
from ingest.graph.auth import AuthSettings
from ingest.graph.log import RunLog
from ingest.graph.pacing import RetryPolicy
from ingest.graph.pull import PullSettings, pull_graph
from simulator.graph_server import FakeGraphServer, GraphData
from tests.conftest import SIM_END, run_cli

TOKEN = "test-token-0f3c"
SINCE = "2026-10-20T00:00:00Z"
UNTIL = "2026-11-02T00:00:00Z"


def sp_ids(sim) -> list[str]:
    return sorted({e["servicePrincipal"]["id"] for e in sim.events})


def ids_sha(ids) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


def truth_sha(sim, sp: str) -> str:
    return ids_sha(e["id"] for e in sim.events if e["servicePrincipal"]["id"] == sp)


def db_ids(db, sp: str | None = None) -> list[str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        if sp:
            return [r[0] for r in con.execute("SELECT id FROM events WHERE service_principal_id = ?", [sp]).fetchall()]
        return [r[0] for r in con.execute("SELECT id FROM events").fetchall()]
    finally:
        con.close()


def last_run(db) -> dict:
    con = duckdb.connect(str(db), read_only=True)
    try:
        cur = con.execute("SELECT * FROM ingest_runs WHERE source = 'graph' ORDER BY run_id DESC LIMIT 1")
        return dict(zip([d[0] for d in cur.description], cur.fetchone()))
    finally:
        con.close()


@pytest.fixture(scope="module")
def graph_data(sim):
    return GraphData.from_simulation(sim)


@pytest.fixture
def server(graph_data):
    with FakeGraphServer(graph_data, token=TOKEN, max_top=999) as srv:
        yield srv


def settings(server, db, sp=None, **kw) -> PullSettings:
    from ingest.graph.command import parse_when

    base = dict(db=str(db), base_url=server.base_url, auth=AuthSettings(method="token"),
                service_principal_ids=[sp] if sp else [], since=parse_when(SINCE), until=parse_when(UNTIL),
                rate=None, policy=RetryPolicy(max_wait=30, backoff=0.05), quiet=True, slice_length=timedelta(days=4),
                audit_logs=False)  # the provisioning pull alone (the audit log's: tests/test_directory_audits.py)
    base.update(kw)
    return PullSettings(**base)


def pull(monkeypatch, server, db, sp=None, **kw):
    monkeypatch.setenv("PROVLENS_GRAPH_TOKEN", TOKEN)
    return pull_graph(settings(server, db, sp, **kw), RunLog("json"))


def test_full_pull_by_cli_equals_ground_truth(sim, server, tmp_path):
    db = tmp_path / "g.duckdb"
    args = ["ingest", "graph", "--db", str(db), "--graph-url", server.base_url, "--rate", "off",
            "--since", SINCE, "--until", UNTIL]
    for sp in sp_ids(sim):
        args += ["--service-principal-id", sp]
    proc = run_cli(*args, env={"PROVLENS_GRAPH_TOKEN": TOKEN})
    assert proc.returncode == exitcodes.OK, proc.stderr
    for sp in sp_ids(sim):
        ids = db_ids(db, sp)
        assert len(ids) == len(set(ids)) == sim.truth["events"]["by_service_principal"][sp]
        assert ids_sha(ids) == truth_sha(sim, sp)
    assert ids_sha(db_ids(db)) == sim.truth["events"]["ids_sha256"]
    con = duckdb.connect(str(db), read_only=True)
    jobs = con.execute("SELECT count(DISTINCT job_id), count(DISTINCT service_principal_id) "
                       "FROM sync_job_snapshots").fetchone()
    runs = con.execute("SELECT count(*), min(outcome), max(outcome), sum(pages) FROM ingest_runs "
                       "WHERE source='graph'").fetchone()
    con.close()
    assert jobs[1] == len(sp_ids(sim)) and jobs[0] >= len(sp_ids(sim))
    assert runs[0] == len(sp_ids(sim)) and runs[1] == runs[2] == "success" and runs[3] > 0


def test_one_sp_never_loads_another_and_filters_client_side(sim, graph_data, tmp_path, monkeypatch):
    """A server that ignores $filter entirely: the client still keeps only the SP's events in the window."""
    sp = sp_ids(sim)[0]
    with FakeGraphServer(graph_data, token=TOKEN) as srv:
        import simulator.graph_server as gs

        monkeypatch.setattr(gs, "compile_filter", lambda text: (lambda e: True))
        out = pull(monkeypatch, srv, tmp_path / "g.duckdb", sp, slice_length=timedelta(days=4))
    assert out.exit_code == exitcodes.OK
    ids = db_ids(tmp_path / "g.duckdb")
    assert ids_sha(ids) == truth_sha(sim, sp) and len(ids) == len(set(ids))
    other = sum(1 for e in sim.events if e["servicePrincipal"]["id"] != sp)
    assert out.scopes[0].other_sp_dropped >= other > 0
    assert "other service principals ignored" in last_run(tmp_path / "g.duckdb")["message"]


def test_overlapping_pulls_make_no_duplicates_and_resume_from_watermark(sim, server, tmp_path, monkeypatch):
    from ingest.graph.command import parse_when

    db = tmp_path / "g.duckdb"
    sp = sp_ids(sim)[0]
    mid = SIM_END.replace(hour=0) - timedelta(days=2, hours=5)
    first = pull(monkeypatch, server, db, sp, until=mid)
    assert first.exit_code == exitcodes.OK
    # second run: no --since, so it starts at the watermark minus the 2 h overlap
    second = pull(monkeypatch, server, db, sp, since=None, until=parse_when(UNTIL))
    assert second.exit_code == exitcodes.OK
    assert second.scopes[0].window_start == mid - timedelta(hours=2)
    assert second.scopes[0].loaded.new + first.scopes[0].loaded.new == len(db_ids(db))
    ids = db_ids(db)
    assert len(ids) == len(set(ids)) and ids_sha(ids) == truth_sha(sim, sp)


FAULT_PLANS = {
    # every Retry-After form: integer, decimal, decimal comma, HTTP date, none (exponential backoff)
    "throttled": ["2:429:retry-after=0", "4:429:retry-after=0.2", "6:429:retry-after=0%2C2",
                  "8:429:retry-after=date+1", "10:429:retry-after=none"],
    "server errors": ["2:503:retry-after=0", "4:504", "6:500", "8:html", "10:html:status=200", "12:truncated",
                      "14:reset"],
    "paging quirks": ["2:slow:delay=0.3", "4:empty", "5:empty", "7:401", "9:skiptoken"],
}


@pytest.mark.parametrize("kind", list(FAULT_PLANS))
def test_faults_are_survived_with_nothing_lost(sim, server, tmp_path, monkeypatch, kind):
    sp = sp_ids(sim)[0]
    plan = FAULT_PLANS[kind]
    server.set_faults(plan)
    out = pull(monkeypatch, server, tmp_path / "g.duckdb", sp, top=20, jobs=False)
    assert out.exit_code == exitcodes.OK, out.scopes[0].error
    ids = db_ids(tmp_path / "g.duckdb")
    assert ids_sha(ids) == truth_sha(sim, sp) and len(ids) == len(set(ids))
    assert all(f.fired for f in server.faults.faults if f.kind != "skiptoken"), "a fault never fired"
    run = last_run(tmp_path / "g.duckdb")
    assert run["outcome"] == "success"
    if kind == "throttled":
        assert run["throttled"] == len(plan) and run["retries"] >= len(plan)
    if kind == "server errors":
        assert run["retries"] >= len(plan)
    if kind == "paging quirks":
        statuses = [s for _, s in server.provisioning_requests()]
        assert 400 in statuses and 401 in statuses  # the rejected skiptoken restarted its slice


def test_top_falls_back_when_server_rejects_999(sim, graph_data, tmp_path, monkeypatch):
    sp = sp_ids(sim)[0]
    with FakeGraphServer(graph_data, token=TOKEN, max_top=500) as srv:
        out = pull(monkeypatch, srv, tmp_path / "g.duckdb", sp)
        assert any("%24top=500" in p or "$top=500" in p for p, _ in srv.provisioning_requests())
    assert out.exit_code == exitcodes.OK
    assert ids_sha(db_ids(tmp_path / "g.duckdb")) == truth_sha(sim, sp)


@pytest.mark.parametrize("fault,code,words", [
    ("1:403", exitcodes.AUTH, ["AuditLog.Read.All", "Directory.Read.All", "P1"]),
    ("1:expire", exitcodes.AUTH, ["401", "expired"]),
    ("1:404", exitcodes.USAGE, ["404", "--graph-url"]),
    ("1:429:retry-after=200,repeat=1000", exitcodes.UNREACHABLE, ["--max-wait", "200"]),
])
def test_fatal_answers_exit_with_clear_message(sim, server, tmp_path, fault, code, words):
    server.set_faults([fault])
    proc = run_cli("ingest", "graph", "--db", str(tmp_path / "g.duckdb"), "--graph-url", server.base_url,
                   "--rate", "off", "--since", SINCE, "--until", UNTIL, "--service-principal-id", sp_ids(sim)[0],
                   "--max-wait", "5", env={"PROVLENS_GRAPH_TOKEN": TOKEN})
    assert proc.returncode == code, proc.stderr
    for w in words:
        assert w in proc.stderr
    assert "Traceback" not in proc.stderr
    assert last_run(tmp_path / "g.duckdb")["outcome"] == "failed"


def test_token_expiring_mid_run_keeps_committed_slices(sim, server, tmp_path, monkeypatch):
    sp = sp_ids(sim)[0]
    server.set_faults(["6:expire"])
    db = tmp_path / "g.duckdb"
    out = pull(monkeypatch, server, db, sp, jobs=False, slice_length=timedelta(days=1))
    assert out.exit_code == exitcodes.AUTH
    done = out.scopes[0].slices_done
    assert 0 < done < out.scopes[0].slices
    assert last_run(db)["outcome"] == "partial"
    server.set_faults([])
    again = pull(monkeypatch, server, db, sp, since=None)  # resumes after the last committed slice
    assert again.exit_code == exitcodes.OK
    assert ids_sha(db_ids(db)) == truth_sha(sim, sp)


def test_bad_graph_url_and_rate_are_config_errors(tmp_path):
    proc = run_cli("ingest", "graph", "--db", str(tmp_path / "g.duckdb"), "--graph-url", "http://example.com/v1.0",
                   env={"PROVLENS_GRAPH_TOKEN": TOKEN})
    assert proc.returncode == exitcodes.USAGE and "plain http" in proc.stderr
    proc = run_cli("ingest", "graph", "--db", str(tmp_path / "g.duckdb"), "--rate", "fast",
                   env={"PROVLENS_GRAPH_TOKEN": TOKEN})
    assert proc.returncode == exitcodes.USAGE and "--rate" in proc.stderr


def test_unreachable_server_exits_5(tmp_path):
    proc = run_cli("ingest", "graph", "--db", str(tmp_path / "g.duckdb"), "--graph-url", "http://127.0.0.1:9/v1.0",
                   "--rate", "off", "--since", "2d", "--max-wait", "3", env={"PROVLENS_GRAPH_TOKEN": TOKEN})
    assert proc.returncode == exitcodes.UNREACHABLE, proc.stderr
    assert "connect" in proc.stderr


@pytest.mark.parametrize("commit", [{"commit_seconds": 3600.0},
                                    {"commit_seconds": 3600.0, "commit_events": 10, "top": 5},
                                    {"commit_seconds": 0.0}])
def test_quick_slices_are_committed_together_and_nothing_is_lost(sim, server, tmp_path, monkeypatch, capfd, commit):
    """Slices are committed together until enough events wait (or the oldest waits long enough); a commit
    never moves the watermark past a slice that is not complete, and the result equals the truth."""
    import json

    sp = sp_ids(sim)[0]
    db = tmp_path / "g.duckdb"
    capfd.readouterr()
    out = pull(monkeypatch, server, db, sp, jobs=False, slice_length=timedelta(days=1), **commit)
    assert out.exit_code == exitcodes.OK
    lines = [json.loads(x) for x in capfd.readouterr().err.splitlines() if x.startswith("{")]
    commits = [x for x in lines if x.get("event") in ("slice_committed", "chunk_committed")]
    slices = out.scopes[0].slices
    if commit == {"commit_seconds": 3600.0}:
        assert len(commits) == 1  # every slice of the run in one transaction
    elif commit == {"commit_seconds": 0.0}:
        assert len(commits) == sum(1 for x in commits if x["event"] == "slice_committed") <= slices
        assert len(commits) > 1
    else:
        assert sum(1 for x in commits if x["event"] == "chunk_committed") >= 1  # mid-slice commits happened
        assert len(commits) > 2
    assert ids_sha(db_ids(db)) == truth_sha(sim, sp)
    con = duckdb.connect(str(db), read_only=True)
    marks = con.execute("SELECT epoch(value) FROM watermarks WHERE source = 'graph'").fetchall()
    con.close()
    from ingest.graph.command import parse_when

    assert [m[0] for m in marks] == [parse_when(UNTIL).timestamp()]
