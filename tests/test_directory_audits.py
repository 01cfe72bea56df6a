"""The directory audit log source (issue 24): the real msgraph-sdk over HTTP pulls ``/auditLogs/directoryAudits``
from the fake Graph server, filtered to the provisioning service. What it stores equals the simulator's truth;
re-runs, overlapping windows, throttling and dropped connections add nothing and lose nothing; the quarantine
periods gain the episode only the audit log knows (equal to the truth and to the plain reference query); the
configuration changes are drawn on the Sync cycles timeline and listed on the Overview."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from urllib.parse import unquote

import duckdb
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from ingest import exitcodes
from ingest.graph.auth import AuthSettings
from ingest.graph.log import RunLog
from ingest.graph.pacing import RetryPolicy
from ingest.graph.pull import PullSettings, pull_graph
from ingest.store import Store
from queries.db import release, run, run_sql
from queries.filters import Filters
from queries.reference import REFERENCES
from simulator.graph_server import FakeGraphServer, GraphData
from tests.conftest import ROOT, SIM_END, chart_figures, html_tables, run_cli

TOKEN = "audit-test-token"
SINCE = SIM_END - timedelta(days=14)  # the simulator's audit-only quarantine is 5 days before its 6-day period


def _settings(server, db, **kw) -> PullSettings:
    base = dict(db=str(db), base_url=server.base_url, auth=AuthSettings(method="token"), since=SINCE,
                until=SIM_END, rate=None, policy=RetryPolicy(max_wait=60, backoff=0.05), quiet=True,
                slice_length=timedelta(days=1), top=2, jobs=False)
    base.update(kw)
    return PullSettings(**base)


def _pull(monkeypatch, server, db, **kw):
    monkeypatch.setenv("PROVLENS_GRAPH_TOKEN", TOKEN)
    return pull_graph(_settings(server, db, **kw), RunLog("json"))


def _rows(db, sql: str) -> list[tuple]:
    release(str(db))
    with duckdb.connect(str(db), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(sql).fetchall()


def _iso(t) -> str:
    t = pd.Timestamp(t)
    return (t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _truth_iso(text: str) -> str:
    return text.rstrip("Z")[:26]  # 7 fractional digits -> 6 (the simulator's times are whole microseconds)


@pytest.fixture(scope="module")
def data(sim) -> GraphData:
    return GraphData.from_simulation(sim)


@pytest.fixture(scope="module")
def pulled(sim, data, tmp_path_factory):
    """One full pull (audit log and provisioning logs) of the simulator's tenant, $top=2 so every slice pages."""
    db = tmp_path_factory.mktemp("audits") / "pulled.duckdb"
    mp = pytest.MonkeyPatch()
    try:
        with FakeGraphServer(data, token=TOKEN) as server:
            out = _pull(mp, server, db)
            requests = [unquote(p) for p, _ in server.audit_requests()]
    finally:
        mp.undo()
    assert out.exit_code == exitcodes.OK, (out.audit and out.audit.error, [s.error for s in out.scopes])
    return {"db": db, "out": out, "requests": requests}


def test_the_pull_stores_exactly_the_provisioning_services_entries(pulled, sim):
    truth = sim.truth["directory_audits"]
    ids = [r[0] for r in _rows(pulled["db"], "SELECT id FROM directory_audits")]
    assert len(ids) == len(set(ids)) == truth["provisioning_total"]
    assert hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest() == truth["provisioning_ids_sha256"]
    by_activity = dict(_rows(pulled["db"], "SELECT activity_display_name, count(*) FROM directory_audits GROUP BY 1"))
    assert by_activity == truth["by_activity"]
    assert truth["total"] > truth["provisioning_total"]  # other services' entries exist and were left out
    # the filter as Microsoft documents it (loggedByService eq; activityDateTime ge/le), and paging was followed
    first = [r for r in pulled["requests"] if "$skiptoken" not in r]
    assert first and all("loggedByService eq 'Account Provisioning'" in r and "activityDateTime ge " in r
                         and "activityDateTime le " in r for r in first)
    assert any("$skiptoken" in r for r in pulled["requests"])
    assert pulled["out"].audit.slices_done == pulled["out"].audit.slices == 14


def test_flattened_columns_hold_who_what_and_which_app(pulled, sim):
    truth = sim.truth["directory_audits"]["config_changes"]
    got = run(str(pulled["db"]), "config_changes", Filters())
    assert [(_iso(r.activity_time), r.activity, r.initiated_by_name, r.service_principal_id, r.job_id)
            for r in got.itertuples()] == \
        [(_truth_iso(c["at"]), c["activity"], c["by"], c["service_principal_id"], c["job_id"]) for c in truth]
    kinds = set(got["initiated_by_type"])
    assert kinds == {"user", "app"}  # an admin and an automation app


def test_a_rerun_and_an_overlapping_window_add_nothing(pulled, sim, data, monkeypatch, tmp_path):
    import shutil

    db = tmp_path / "again.duckdb"
    shutil.copy(pulled["db"], db)
    before = _rows(db, "SELECT id, raw::VARCHAR, last_ingested_at FROM directory_audits ORDER BY id")
    with FakeGraphServer(data, token=TOKEN) as server:
        again = _pull(monkeypatch, server, db)
        overlap = _pull(monkeypatch, server, db, since=SIM_END - timedelta(days=9, hours=7),
                        slice_length=timedelta(hours=10))
        incremental = _pull(monkeypatch, server, db, since=None)  # from the watermark minus the 2 h overlap
    for out in (again, overlap, incremental):
        assert out.exit_code == exitcodes.OK
        assert out.audit.loaded.new == out.audit.loaded.updated == 0
    assert again.audit.loaded.read == sim.truth["directory_audits"]["provisioning_total"]
    assert overlap.audit.loaded.read > 0
    assert incremental.audit.window_start == SIM_END - timedelta(hours=2)
    assert _rows(db, "SELECT id, raw::VARCHAR, last_ingested_at FROM directory_audits ORDER BY id") == before
    assert _rows(db, "SELECT value FROM watermarks WHERE source = 'graph-audit'") == [(SIM_END,)]


def test_throttling_and_a_dropped_connection_are_retried_like_the_provisioning_pull(sim, data, monkeypatch, tmp_path):
    db = tmp_path / "faults.duckdb"
    with FakeGraphServer(data, token=TOKEN, audit_faults=["2:429:retry-after=1", "5:reset", "7:503"]) as server:
        out = _pull(monkeypatch, server, db)
        statuses = [s for _, s in server.audit_requests()]
        fired = [f.fired for f in server.audit_faults.faults]
    assert out.exit_code == exitcodes.OK, out.audit.error
    assert 429 in statuses and 503 in statuses and 0 in statuses and all(fired)  # 0: the connection dropped
    assert out.retries >= 3 and out.throttled >= 1
    ids = {r[0] for r in _rows(db, "SELECT id FROM directory_audits")}
    assert hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest() == \
        sim.truth["directory_audits"]["provisioning_ids_sha256"]


def test_quarantine_periods_gain_the_audit_log_only_episode(pulled, sim):
    db = str(pulled["db"])
    periods = run(db, "quarantine_periods", Filters())
    audit_only = sim.truth["directory_audits"]["audit_only_quarantine"]
    assert audit_only  # the simulator's story has one
    for q in audit_only:
        (row,) = [r for r in periods.itertuples() if _iso(r.began) == _truth_iso(q["began"])]
        assert row.source == "audit log" and row.job_id == q["job_id"]
        assert row.service_principal_id == q["service_principal_id"] and _iso(row.ended) == _truth_iso(q["ended"])
        assert row.reason == q["reason"]
    # every quarantine the job ran into in the period is listed too (this pull took one job snapshot per job, so the
    # audit log is what knows them), from within a second of its start
    for q in sim.truth["quarantine"]:
        assert any(abs(pd.Timestamp(r.began) - pd.Timestamp(q["began"])) < pd.Timedelta(seconds=1)
                   and r.service_principal_id == q["service_principal_id"] for r in periods.itertuples())
    assert len(periods) == len(audit_only) + len(sim.truth["quarantine"])
    # the plain reference query over the source tables says the same, for each view
    for filters in (Filters(), Filters(since=SIM_END - timedelta(days=3)),
                    Filters(service_principal_ids=(audit_only[0]["service_principal_id"],)),
                    Filters(job_id=audit_only[0]["job_id"])):
        for name in ("quarantine_periods", "config_changes"):
            got = run(db, name, filters)
            with duckdb.connect(db, read_only=True) as con:
                con.execute("SET TimeZone = 'UTC'")
                want = run_sql(con, REFERENCES[name], filters.params())
            release(db)
            pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True),
                                          check_dtype=False)


def test_no_audit_logs_skips_the_source(sim, data, tmp_path):
    db = tmp_path / "noaudit.duckdb"
    with FakeGraphServer(data, token=TOKEN) as server:
        proc = run_cli("ingest", "graph", "--db", str(db), "--graph-url", server.base_url, "--rate", "off",
                       "--since", SINCE.isoformat(), "--until", SIM_END.isoformat(), "--no-jobs", "--no-audit-logs",
                       env={"PROVLENS_GRAPH_TOKEN": TOKEN})
        assert proc.returncode == exitcodes.OK, proc.stderr
        assert not server.audit_requests()
        proc = run_cli("ingest", "graph", "--db", str(db), "--graph-url", server.base_url, "--rate", "off",
                       "--since", SINCE.isoformat(), "--until", SIM_END.isoformat(), "--no-jobs",
                       env={"PROVLENS_GRAPH_TOKEN": TOKEN})
    assert proc.returncode == exitcodes.OK, proc.stderr
    assert "graph-audit default/*" in proc.stderr and "audit entries" in proc.stderr
    total = sim.truth["directory_audits"]["provisioning_total"]
    assert _rows(db, "SELECT count(*) FROM directory_audits") == [(total,)]


def test_migration_24_adds_the_table_to_an_older_store(tmp_path):
    db = str(tmp_path / "old.duckdb")
    with Store.open(db):
        pass
    with duckdb.connect(db) as con:  # the store as provlens before issue 24 left it
        con.execute("DROP TABLE directory_audits")
        con.execute("DELETE FROM schema_version WHERE version = 24")
    with Store.open(db) as store:
        assert 24 in store.migrations_applied
        assert store.con.execute("SELECT count(*) FROM directory_audits").fetchone() == (0,)


def _app(db, monkeypatch, page: str) -> AppTest:
    monkeypatch.setenv("PROVLENS_DB", str(db))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params["range"] = "all"
    at.run()
    if page != "overview":
        at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def test_config_changes_are_markers_on_the_sync_cycles_timeline(demo_db, truth, monkeypatch):
    at = _app(demo_db, monkeypatch, "cycles")
    timeline = next(f for f in chart_figures(at) if "per job" in f["layout"]["title"]["text"])
    # one marker trace per job row; together they hold every change, each in its job's row
    markers = sorted((_iso(x), data[1]) for t in timeline["data"] if t.get("name") == "configuration change"
                     for x, data in zip(t["x"], t["customdata"]))
    changes = truth["directory_audits"]["config_changes"]
    assert markers == sorted((_truth_iso(c["at"]), c["by"]) for c in changes)


def test_overview_lists_the_latest_config_changes(demo_db, truth, monkeypatch):
    at = _app(demo_db, monkeypatch, "overview")
    latest = sorted(truth["directory_audits"]["config_changes"], key=lambda c: c["at"], reverse=True)[:5]
    (table,) = [t for t in html_tables(at) if t and "initiated by name" in t[0]]
    assert [(r["activity"], r["initiated by name"]) for r in table] == [(c["activity"], c["by"]) for c in latest]


def test_a_server_that_refuses_the_service_filter_gets_the_time_filter_and_a_client_side_check(
        sim, data, monkeypatch, tmp_path, capfd):
    import simulator.graph_server as gs

    original = gs._check_audit_filter

    def refuse_service(text: str) -> None:
        if "loggedByService" in (text or ""):
            raise gs.FilterError("Invalid filter clause: 'loggedByService' is not supported.")
        original(text)

    monkeypatch.setattr(gs, "_check_audit_filter", refuse_service)
    db = tmp_path / "fallback.duckdb"
    with FakeGraphServer(data, token=TOKEN) as server:
        out = _pull(monkeypatch, server, db)
        statuses = [s for _, s in server.audit_requests()]
    assert out.exit_code == exitcodes.OK, out.audit.error
    assert statuses[0] == 400 and "filter_fallback" in capfd.readouterr().err
    truth = sim.truth["directory_audits"]
    ids = [r[0] for r in _rows(db, "SELECT id FROM directory_audits")]
    assert hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest() == truth["provisioning_ids_sha256"]
    assert out.audit.other_sp_dropped == sum(1 for e in sim.directory_audits
                                             if e["loggedByService"] != "Account Provisioning"
                                             and SINCE <= pd.Timestamp(e["activityDateTime"]) < SIM_END)
