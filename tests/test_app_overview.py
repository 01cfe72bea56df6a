"""AppTest of the Overview page: the numbers shown equal the simulator's ground truth."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from pages.common import md_text
from tests.conftest import ROOT, chart_figures, html_tables


@pytest.fixture()
def app(demo_db, monkeypatch):
    monkeypatch.setenv("PROVLENS_DB", str(demo_db))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params["range"] = "all"
    return at


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_overview_numbers_equal_ground_truth(app, truth):
    at = app.run()
    assert not at.exception, at.exception
    m = _metrics(at)
    ev = truth["events"]
    assert m["Events"] == f"{ev['total']:,}"
    assert m["Failures"] == f"{ev['by_status'].get('failure', 0):,}"
    assert m["Skipped"] == f"{ev['by_status'].get('skipped', 0):,}"
    assert m["Identities"] == f"{ev['distinct_source_ids']:,}"
    assert m["Sync cycles"] == f"{len(truth['cycles']):,}"
    ok, bad = ev["by_status"].get("success", 0), ev["by_status"].get("failure", 0)
    assert m["Success rate"] == f"{ok / (ok + bad):.1%}"
    (top,) = [t for t in html_tables(at) if t and "error code" in t[0]]
    expected = sorted(ev["failures_by_code"].items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    assert [(row["error code"], int(row["failures"].replace(",", ""))) for row in top] == expected
    assert any("Demo data" in i.value for i in at.info)


def test_overview_job_status_and_open_violations(app, truth):
    at = app.run()
    m = _metrics(at)
    assert m["Open violations"] == str(sum(v["state"] == "open" for v in truth["violations"]))
    # every quarantine of the demo ended before the end of the simulation: all jobs are active now
    assert all(q["ended"] for q in truth["quarantine"])
    active = [s.value for s in at.success if ": Active" in s.value]
    assert len(active) == len(truth["apps"])
    # app names are markdown-escaped (common.md_text)
    assert {md_text(a["name"]) for a in truth["apps"]} == {s.split("**:")[0].strip("*") for s in active}
    assert not [e for e in at.error if "quarantined" in e.value]
    assert len(chart_figures(at)) == 2


def test_app_filter_changes_the_numbers(app, truth):
    sp = truth["apps"][1]["service_principal_id"]
    app.query_params["sp"] = sp
    at = app.run()
    assert not at.exception
    assert _metrics(at)["Events"] == f"{truth['events']['by_service_principal'][sp]:,}"
    assert _metrics(at)["Events"] != f"{truth['events']['total']:,}"
    assert at.query_params["sp"] == [sp] or at.query_params["sp"] == sp


def test_url_restores_the_view(app, truth):
    sp = truth["apps"][0]["service_principal_id"]
    app.query_params["sp"] = sp
    at = app.run()
    assert at.sidebar.multiselect(key="f_sps").value == [sp]
    assert _metrics(at)["Events"] == f"{truth['events']['by_service_principal'][sp]:,}"


def test_empty_period_says_what_to_do(app):
    app.query_params["range"] = "custom"
    app.query_params["from"] = "2001-01-01"
    app.query_params["to"] = "2001-01-02"
    at = app.run()
    assert not at.exception
    assert any("Widen the time range" in i.value for i in at.info)


def test_missing_database_is_built_as_demo(tmp_path, monkeypatch):
    db = tmp_path / "fresh" / "provlens.duckdb"
    monkeypatch.setenv("PROVLENS_DB", str(db))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180).run()
    assert not at.exception, at.exception
    assert db.exists()
    assert any("Demo data" in i.value for i in at.info)
