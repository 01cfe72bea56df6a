"""Checking preflight's predictions on a real DuckDB store: findings (from the hand-built inputs of
tests/preflight_cases.py) kept as preflight runs by the store, then Entra-shaped events (the simulator's event
builder) loaded through the store's own loader; each finding is confirmed, not yet or wrong as the planted script
below says. The named queries equal their plain references; the export has the documented columns and the
reference's rows; the Preflight page (AppTest), the alert rule and the CLI's exit codes."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta, timezone

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from ingest import exitcodes
from ingest.alerts.rules import evaluate
from ingest.alerts.settings import load_alert_settings
from ingest.preflight.findings import find, work_domains
from ingest.store import Store
from queries.db import release, run, run_sql
from queries.export import export
from queries.filters import Filters
from queries.preflight import PREFLIGHT_COLUMNS
from queries.reference import PREFLIGHT_REFERENCES
from simulator.events import error_information, event, steps
from simulator.model import App
from tests.conftest import ROOT, run_cli
from tests.preflight_cases import JOB, PLANTED, SP, Model, targets, users

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=timezone.utc)
APP = App(key="leapsome", name="Leapsome", style="gallery", sp_id=SP, app_id="app-1", target_system_id="ts-1",
          template_id="leapsome", job_id=JOB, scim_tenant="t1", client_ip="10.0.0.1", credential_id="c1",
          renewed_credential_id="c2")

# What Entra logs, planted by hand: (event id, minutes after the first run, user id, UPN, action, status, steps op,
# error code). u8's conflict comes before the run: it does not count.
EVENTS = [
    ("e0", -60, "u8", "gina@contoso.com", "create", "failure", "create", "LeapsomeEntryConflict"),
    ("e1", 10, "u1", "u1@contoso.com", "create", "success", "create", None),
    ("e2", 11, "u2", "u2@contoso.com", "create", "failure", "create", "LeapsomeEntryConflict"),
    ("e3", 12, "u3", "u3@contoso.com", "create", "skipped", "update", "AttributeValidationFailed"),
    ("e4", 13, "u4", "u4@contoso.com", "create", "success", "create", None),  # the app took the gmail address
    ("e5", 14, "u5", "u5@contoso.com", "other", "skipped", "default_access", None),
    ("e9", 15, "u9", "u9@contoso.com", "update", "success", "update", None),
]
# The statuses those events mean for the first run's findings (the second run, after every event: all not yet).
EXPECTED = {
    ("duplicate_user_name", "u1"): "confirmed",  # u2, its colliding twin, got the conflict
    ("duplicate_user_name", "u2"): "confirmed",
    ("duplicate_user_name", "u16"): "not yet",  # no event of either namesake yet
    ("duplicate_user_name", "u17"): "not yet",
    ("target_conflict", "u8"): "not yet",  # its conflict was logged before the run
    ("missing_required", "u3"): "confirmed",
    ("missing_required", "u10"): "not yet",
    ("non_work_email", "u4"): "wrong",
    ("default_access_only", "u5"): "confirmed",
    ("nested_group_only", "u6"): "confirmed",  # a cycle ran and did not provision it
    ("disabled_but_active_in_target", "u7"): "not yet",
    ("orphan", "target:t8"): "confirmed",
    ("orphan", "target:o1"): "confirmed",
    ("orphan", "target:o2"): "confirmed",
}


def _event(eid, minutes, uid, upn, action, status, op, code):
    when = (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
    error = error_information(code, "nonServiceFailure", f"{code}: planted") if code else None
    return event(app=APP, tenant_id="tenant-1", source_system_id="aad", event_id=eid, when=when, cycle_id="cyc-1",
                 change_id=eid, duration_ms=20, action=action, status=status, error=error,
                 step_list=steps(op, upn, uid, "True", APP.name, False, status != "failure"), props=[],
                 source_id=uid, src={"displayName": upn, "userName": upn}, target_id="", target_name=upn)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("preflight")
    db = str(root / "preflight.duckdb")
    us = users()
    findings = [f.row() for f in find(us, Model(), targets(), domains=work_domains(us))]
    ndjson = root / "events.ndjson"
    ndjson.write_text("\n".join(json.dumps(_event(*e)) for e in EVENTS) + "\n", encoding="utf-8")
    with Store.open(db) as s:
        first = s.record_preflight({"service_principal_id": SP, "job_id": JOB, "users": len(us),
                                    "target_accounts": len(targets()), "started_at": T0}, findings)
        run_id = s.start_run("files")
        s.load_clean_ndjson(ndjson, run_id=run_id)
        s.finish_run(run_id, "success")
        second = s.record_preflight({"service_principal_id": SP, "job_id": JOB, "users": len(us),
                                     "started_at": T0 + timedelta(hours=1)}, findings)
    release(db)
    return {"db": db, "first": first, "second": second, "root": root}


def _identity(row) -> str:
    if isinstance(row["source_id"], str):
        return row["source_id"]
    return f"target:{next(t.id for t in targets() if t.user_name == row['user_name'])}"


def test_the_planted_events_were_classified_as_entra_would(store):
    with duckdb.connect(store["db"], read_only=True) as con:
        got = dict(con.execute("SELECT id, coalesce(skip_category, error_code, status) FROM events").fetchall())
    assert got["e3"] == "missing_attribute" and got["e5"] == "default_access"
    assert got["e2"] == "LeapsomeEntryConflict"


def test_each_finding_is_confirmed_not_yet_or_wrong(store):
    rows = run(store["db"], "preflight", run=store["first"]).to_dict("records")
    assert {(r["kind"], _identity(r)): r["status"] for r in rows} == EXPECTED
    later = run(store["db"], "preflight", run=store["second"]).to_dict("records")
    assert {r["status"] for r in later} == {"not yet"} and len(later) == len(PLANTED)


def test_precision(store):
    decided = [s for s in EXPECTED.values() if s != "not yet"]
    frame = run(store["db"], "preflight_precision", run=store["first"])
    overall = frame[frame["kind"].isna()].iloc[0]
    assert overall["precision"] == pytest.approx(decided.count("confirmed") / len(decided))
    assert (overall["confirmed"], overall["wrong"], overall["not_yet"]) == (
        decided.count("confirmed"), decided.count("wrong"), list(EXPECTED.values()).count("not yet"))
    per_kind = frame.set_index("kind")
    assert per_kind.loc["non_work_email", "precision"] == 0.0
    assert per_kind.loc["missing_required", "precision"] == 1.0
    assert per_kind.loc["target_conflict", "precision"] != per_kind.loc["target_conflict", "precision"]  # NaN: none


@pytest.mark.parametrize("params", [{}, {"run": 1}, {"run": 2}, {"sps": [SP]}, {"sps": ["other-app"]},
                                    {"since": T0 + timedelta(minutes=30)}])
def test_the_named_queries_equal_their_references(store, params):
    release(store["db"])
    for name, reference in PREFLIGHT_REFERENCES.items():
        got = run(store["db"], name, **params)
        with duckdb.connect(store["db"], read_only=True) as con:
            want = run_sql(con, reference, Filters().params() | {"run": None} | params)
        assert list(got.columns) == list(want.columns), name
        assert got.astype(object).where(got.notna(), None).values.tolist() == \
            want.astype(object).where(want.notna(), None).values.tolist(), (name, params)
        release(store["db"])


def test_the_export_has_the_documented_columns_and_the_references_rows(store, tmp_path):
    out = tmp_path / "preflight.csv"
    result = export(store["db"], "preflight", str(out))
    with out.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == list(PREFLIGHT_COLUMNS)
    with duckdb.connect(store["db"], read_only=True) as con:
        want = run_sql(con, PREFLIGHT_REFERENCES["preflight"], Filters().params() | {"run": None})
    assert rows[1:] == [["" if v is None else str(v) for v in r] for r in want.astype(object).where(
        want.notna(), None).values.tolist()]
    assert result.rows == 2 * len(PLANTED)
    docs = (ROOT / "docs" / "exports.md").read_text(encoding="utf-8")
    assert [line.split("|")[2].strip() for line in docs.splitlines()
            if line.startswith("| preflight |")] == list(PREFLIGHT_COLUMNS)


def test_the_alert_rule_fires_on_new_findings_only(store):
    settings = load_alert_settings({})
    with duckdb.connect(store["db"], read_only=True) as con:
        first = [a for a in evaluate(con, settings, T0 + timedelta(minutes=30)) if a.rule == "preflight"]
        later = [a for a in evaluate(con, settings, T0 + timedelta(hours=2)) if a.rule == "preflight"]
        every = [a for a in evaluate(con, load_alert_settings({"alerts": {"rules": {"preflight": {
            "only_new": False}}}}), T0 + timedelta(hours=2)) if a.rule == "preflight"]
    kinds = {k for k, _ in PLANTED}
    assert {a.key: a.identities for a in first} == {
        f"{SP}/{JOB}/{k}": sum(1 for kk, _ in PLANTED if kk == k) for k in kinds}
    assert later == []  # the second run found the same problems: nothing new
    assert {a.key for a in every} == {f"{SP}/{JOB}/{k}" for k in kinds}
    assert all(a.url.startswith("/preflight?") for a in first)


def test_the_page(store, monkeypatch):
    monkeypatch.setenv("PROVLENS_DB", store["db"])
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params["range"] = "all"
    at.run()
    at.switch_page("pages/preflight.py").run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Findings"] == str(len(PLANTED)) and metrics["Precision"] == "n/a"  # the latest run: not yet
    at.selectbox(key="preflight_run").set_value(store["first"]).run()
    assert not at.exception, at.exception
    decided = [s for s in EXPECTED.values() if s != "not yet"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Precision"] == f"{decided.count('confirmed') / len(decided):.0%}"
    assert metrics["Wrong"] == str(decided.count("wrong"))
    tables = [df.value for df in at.dataframe if "identity_link" in df.value.columns]
    assert sum(len(t) for t in tables) == len(PLANTED)
    links = {link for t in tables for link in t["identity_link"]}
    assert "/identity?q=u4%40contoso.com" in links
    fixes = " ".join(m.value for m in at.markdown)
    assert "Fix:" in fixes and "work email" in fixes
    csv_buttons = [b for b in at.get("download_button") if "(CSV)" in b.proto.label]
    assert len(csv_buttons) == len(at.dataframe)  # every table has its download


def test_the_page_without_a_run_says_what_to_do(tmp_path, monkeypatch):
    empty = str(tmp_path / "empty.duckdb")
    Store.open(empty).close()
    release(empty)
    monkeypatch.setenv("PROVLENS_DB", empty)
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params["range"] = "all"
    at.run()
    at.switch_page("pages/preflight.py").run()
    assert not at.exception, at.exception
    assert any("python -m ingest preflight" in i.value for i in at.info)


def test_cli_exit_codes(store, tmp_path):
    bad = run_cli("ingest", "preflight", "--bogus")
    assert bad.returncode == exitcodes.USAGE and "Traceback" not in bad.stderr
    assert run_cli("ingest", "preflight", "--db", str(tmp_path / "x.duckdb")).returncode == exitcodes.USAGE
    assert run_cli("ingest", "preflight", "--check", "--run", "0").returncode == exitcodes.USAGE
    assert run_cli("ingest", "preflight", "--service-principal-id", SP, "--run", "1",
                   "--db", str(tmp_path / "y.duckdb")).returncode == exitcodes.USAGE
    empty = str(tmp_path / "empty.duckdb")
    Store.open(empty).close()
    release(empty)
    none = run_cli("ingest", "preflight", "--check", "--db", empty)
    assert none.returncode == exitcodes.USAGE and "no preflight run" in none.stderr
    checked = run_cli("ingest", "preflight", "--check", "--run", str(store["first"]), "--db", store["db"])
    assert checked.returncode == exitcodes.OK, checked.stderr
    assert "[wrong] non_work_email u4@contoso.com" in checked.stdout
    decided = [s for s in EXPECTED.values() if s != "not yet"]
    assert f"precision {decided.count('confirmed') / len(decided):.2f}" in checked.stdout
