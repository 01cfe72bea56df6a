"""`python -m ingest alerts --dry-run` as a user runs it: on the demo store and on a fake-Graph pull it lists the alerts
the simulation's records say are active (simulator/alert_truth.py); ``stale_data`` follows provlens' own runs (read
back from ``ingest_runs``); a bad ``[alerts.rules]`` is exit 2 with one line."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import duckdb
import pytest

from ingest import exitcodes
from ingest.alerts.settings import load_alert_settings
from simulator.alert_truth import Facts, expected_alerts
from simulator.graph_server import FakeGraphServer, GraphData
from tests.conftest import SIM_END, run_cli, store_from_events

TOKEN = "alerts-test-token-5d1e"
MARGIN = timedelta(minutes=15)


def alerts_json(db, *extra: str) -> list[dict]:
    proc = run_cli("ingest", "alerts", "--db", str(db), "--dry-run", "--format", "json", *extra)
    assert proc.returncode == exitcodes.OK, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def keys(docs: list[dict]) -> set[tuple[str, str]]:
    return {(d["rule"], d["key"]) for d in docs}


def default_thresholds() -> dict:
    settings = load_alert_settings({})
    return {name: dict(rule.thresholds) for name, rule in settings.rules.items()}


def stable_times(facts, th, candidates):
    return [t for t in candidates
            if expected_alerts(facts, t, th) == expected_alerts(facts, t - MARGIN, th)
            == expected_alerts(facts, t + MARGIN, th)]


def test_demo_store_lists_the_expected_alerts(sim, demo_db):
    facts, th = Facts(sim), default_thresholds()
    (period,) = sim.truth["quarantine"]
    began = datetime.fromisoformat(period["began"][:19]).replace(tzinfo=timezone.utc)
    times = stable_times(facts, th, [SIM_END, began + timedelta(hours=2), began - timedelta(hours=5),
                                     SIM_END - timedelta(days=2, hours=3)])
    assert SIM_END in times and len(times) >= 3
    rules_seen = set()
    for t in times:
        docs = alerts_json(demo_db, "--at", t.isoformat())
        assert keys(docs) == expected_alerts(facts, t, th), t
        assert len(docs) == len(keys(docs))
        rules_seen |= {d["rule"] for d in docs}
        for d in docs:
            assert d["url"].startswith("/") and d["first_seen"].endswith("Z")
    assert {"quarantine", "credential", "violation"} <= rules_seen


def test_fake_graph_pull_lists_the_expected_alerts_and_then_stale_data(sim, tmp_path):
    """A real pull through msgraph-sdk; the job status is captured now (the fake Graph serves each job's latest
    state), the events end a month ago: every job is quiet and stopped. Four hours on, the ingest is stale."""
    db = tmp_path / "g.duckdb"
    with FakeGraphServer(GraphData.from_simulation(sim), token=TOKEN) as server:
        proc = run_cli("ingest", "graph", "--db", str(db), "--graph-url", server.base_url, "--rate", "off",
                       "--since", "2026-10-20T00:00:00Z", "--until", "2026-11-02T00:00:00Z", "-q",
                       env={"PROVLENS_GRAPH_TOKEN": TOKEN})
        assert proc.returncode == exitcodes.OK, proc.stderr
    with duckdb.connect(str(db), read_only=True) as con:
        (ended,) = con.execute("SELECT max(ended_at) FROM ingest_runs WHERE source = 'graph' AND outcome = 'success'"
                               ).fetchone()
        (captured,) = con.execute("SELECT max(captured_at) FROM sync_job_snapshots").fetchone()
    now = max(ended, captured).astimezone(timezone.utc) + timedelta(minutes=1)
    facts, th = Facts(sim, scim=False), default_thresholds()
    expected = expected_alerts(facts, now, th)
    assert {r for r, _ in expected} >= {"quiet", "violation"}
    assert all(k.endswith("/stopped") for r, k in expected if r == "quiet")
    docs = alerts_json(db, "--at", now.isoformat())
    assert keys(docs) == expected
    later = now + timedelta(hours=th["stale_data"]["max_age_hours"] + 1)
    assert keys(alerts_json(db, "--at", later.isoformat())) == expected_alerts(facts, later, th) | {
        ("stale_data", "graph")}


def test_stale_data_follows_the_runs(sim, tmp_path):
    db = store_from_events(tmp_path, "files", sim.events[:50])
    config = tmp_path / "provlens.toml"
    config.write_text('[alerts.rules.stale_data]\nmax_age_hours = 2\nsources = ["files"]\n', encoding="utf-8")
    with duckdb.connect(db, read_only=True) as con:
        (ended,) = con.execute("SELECT ended_at FROM ingest_runs WHERE outcome = 'success'").fetchone()
    ended = ended.astimezone(timezone.utc)

    def stale(at: datetime, *extra: str) -> list[dict]:
        return [d for d in alerts_json(db, "--at", at.isoformat(), *extra) if d["rule"] == "stale_data"]

    assert stale(ended + timedelta(hours=1), "--config", str(config)) == []
    (doc,) = stale(ended + timedelta(hours=3), "--config", str(config))
    assert doc["key"] == "files" and doc["first_seen"].startswith(ended.strftime("%Y-%m-%dT%H:%M"))
    assert stale(ended + timedelta(hours=5)) == []  # by default only scheduled sources (graph, blobs, scim) count


def test_text_format_and_missing_database(demo_db, tmp_path):
    proc = run_cli("ingest", "alerts", "--db", str(demo_db), "--dry-run", "--at", SIM_END.isoformat())
    assert proc.returncode == exitcodes.OK and "dry run" in proc.stderr
    assert "[warning] violation" in proc.stdout
    proc = run_cli("ingest", "alerts", "--db", str(tmp_path / "none.duckdb"), "--dry-run")
    assert proc.returncode == exitcodes.DATABASE and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("toml, words", [
    ("[alerts.rules.quietness]\nintervals = 3\n", "alerts.rules.quietness"),
    ("[alerts.rules.quiet]\nintervalz = 3\n", "alerts.rules.quiet.intervalz"),
    ("[alerts.rules.quiet]\nintervals = \"three\"\n", "alerts.rules.quiet.intervals"),
    ("[alerts.rules.credential]\nseverity = \"urgent\"\n", "alerts.rules.credential.severity"),
    ("[alerts.rules.violation]\nkinds = [\"duplicate_email\"]\n", "alerts.rules.violation.kinds"),
    ("[alerts.rules.failure_spike]\nmin_rate = 20\n", "alerts.rules.failure_spike.min_rate"),
    ("[alerts.rules.new_error]\nenabled = \"yes\"\n", "alerts.rules.new_error.enabled"),
])
def test_bad_rule_settings_exit_2_with_one_line(demo_db, tmp_path, toml, words):
    config = tmp_path / "provlens.toml"
    config.write_text(toml, encoding="utf-8")
    proc = run_cli("ingest", "alerts", "--db", str(demo_db), "--config", str(config), "--dry-run")
    assert proc.returncode == exitcodes.USAGE, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_settings_defaults_and_overrides():
    settings = load_alert_settings({"alerts": {"rules": {"quiet": {"intervals": 5, "severity": "critical"}},
                                               "targets": [{"name": "x"}]}})
    assert settings.rule("quiet")["intervals"] == 5 and settings.severity("quiet") == "critical"
    assert settings.rule("quiet")["default_interval_minutes"] == 40
    assert settings.rule("quarantine_risk")["total_failures"] == 40000
    assert all(settings.enabled(name) for name in settings.rules)


def test_credential_validation_unavailable_is_a_credential_alert(sim, tmp_path):
    """Entra's other credential code: a failure with it after the app's last success raises ``credential``; an
    Entra success after it resolves the alert."""
    prod = sim.truth["apps"][0]["service_principal_id"]
    mine = [e for e in sim.events if e["servicePrincipal"]["id"] == prod][:60]
    last = mine[-1]
    at = datetime.fromisoformat(last["activityDateTime"].rstrip("Z")[:26]).replace(tzinfo=timezone.utc)
    failed = json.loads(json.dumps(last))
    failed["id"] = "cred-unavailable-1"
    failed["activityDateTime"] = (at + timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    failed["provisioningStatusInfo"] = {"status": "failure", "errorInformation": {
        "errorCode": "SystemForCrossDomainIdentityManagementCredentialValidationUnavailable",
        "errorCategory": "nonServiceFailure", "reason": "We are unable to validate the credentials."}}
    healed = json.loads(json.dumps(last))
    healed["id"] = "cred-unavailable-2"
    healed["activityDateTime"] = (at + timedelta(minutes=30)).isoformat().replace("+00:00", "Z")
    healed["provisioningStatusInfo"] = {"status": "success", "errorInformation": None}
    db = store_from_events(tmp_path, "cred", [*mine, failed, healed])

    def credential(t: datetime) -> list[dict]:
        return [d for d in alerts_json(db, "--at", t.isoformat()) if d["rule"] == "credential"]

    assert credential(at + timedelta(seconds=30)) == []
    (doc,) = credential(at + timedelta(minutes=10))
    assert doc["key"] == prod and "CredentialValidationUnavailable" in doc["message"] and doc["severity"] == "critical"
    assert credential(at + timedelta(minutes=40)) == []
