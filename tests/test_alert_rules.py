"""The alert rules (issue 24) on simulator stories: at many times, the alerts provlens finds in a real store equal the
ones the simulation's own records say are active (simulator/alert_truth.py), rule by rule, and each story's alerts
fire and later resolve.

The story (``generate(..., alert_story=True)``, 60 users over 4 days): the credential expires (quarantine in and out,
credential, a failure spike, a new error code), a department rename the app refuses for 8 hours (escrow towards the
quarantine thresholds, scaled to a tenant 1,000 times smaller), a 6-hour stall of the sandbox job (quiet: stopped),
quiet nights (quiet: nothing changed), duplicate userNames and non-work emails (violation), an HRIS client writing
(unlogged writes)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ingest.alerts.model import RULES, SEVERITIES
from ingest.alerts.rules import evaluate
from ingest.alerts.settings import load_alert_settings
from ingest.dbfile import read_connection
from simulator.alert_truth import Facts, expected_alerts
from tests.conftest import run_cli

END = datetime(2026, 11, 1, tzinfo=timezone.utc)
DAYS = 4
STEP = timedelta(minutes=37)
MARGIN = timedelta(minutes=15)  # a sample this close to a change of the truth's set is left out
# Microsoft's thresholds / 1,000 (a 46-user app cannot reach 5,000 failures).
SMALL_TENANT = {"quarantine_risk": {"evaluation_from": 5, "total_failures": 40, "absolute_failures": 60}}
# stale_data is about provlens' runs (test_alert_cli.py); preflight about preflight runs (test_preflight_check.py)
STORY_RULES = tuple(r for r in RULES if r not in ("stale_data", "preflight"))


def build_store(sim, root: Path) -> str:
    """A real store from a simulation, built the way ``ingest demo`` builds one: events, SCIM trail (correlated),
    job snapshots."""
    from ingest.file_ingest import ingest_files
    from ingest.scim.ingest import ingest_scim
    from ingest.store import Store
    from simulator import write

    paths = write(sim, root / "sim")
    db = str(root / "story.duckdb")
    ingest_files(db, [str(root / "sim" / "graph")], source="demo", quiet=True)
    ingest_scim(db, [str(paths["scim_audit"])], quiet=True, correlate=True)
    with Store.open(db) as store:
        store.load_job_snapshots(sim.job_snapshots)
    return db


def thresholds(settings) -> dict:
    return {name: dict(rule.thresholds) for name, rule in settings.rules.items()}


@pytest.fixture(scope="module")
def story_sim():
    from simulator import generate

    return generate(seed=5, users=60, days=DAYS, end=END, alert_story=True)


@pytest.fixture(scope="module")
def story_db(story_sim, tmp_path_factory) -> str:
    return build_store(story_sim, tmp_path_factory.mktemp("alert-story"))


@pytest.fixture(scope="module")
def sweep(story_sim, story_db):
    """(time, expected, found) at every STEP across the story and 3 hours past its end, where the truth's set is the
    same MARGIN before and after (a change of state exactly at a sample would compare two clocks' rounding)."""
    settings = load_alert_settings({"alerts": {"rules": SMALL_TENANT}})
    th, facts = thresholds(settings), Facts(story_sim)
    samples = []
    t = END - timedelta(days=DAYS) + timedelta(minutes=7)
    while t < END + timedelta(hours=3):
        expected = expected_alerts(facts, t, th, rules=STORY_RULES)
        if expected == expected_alerts(facts, t - MARGIN, th, rules=STORY_RULES) \
                == expected_alerts(facts, t + MARGIN, th, rules=STORY_RULES):
            with read_connection(story_db) as con:
                found = evaluate(con, settings, t)
            samples.append((t, expected, found))
        t += STEP
    return samples


def test_the_sweep_compares_most_times(sweep):
    assert len(sweep) >= 0.6 * (DAYS * 24 * 60 + 180) / (STEP.total_seconds() / 60)


@pytest.mark.parametrize("rule", STORY_RULES)
def test_each_rule_matches_the_story_and_resolves(rule, sweep):
    fired, resolved = set(), set()
    for t, expected, found in sweep:
        mine = {key for r, key in expected if r == rule}
        got = {a.key for a in found if a.rule == rule}
        assert got == mine, (t, rule, sorted(mine - got), sorted(got - mine))
        resolved |= fired - mine
        fired |= mine
    assert fired, f"the story never raised {rule}"
    assert resolved, f"no {rule} alert of the story resolved"


def test_quiet_tells_stopped_from_nothing_changed(sweep, story_sim):
    sandbox = story_sim.truth["apps"][1]
    kinds = {key.rsplit("/", 1)[1] for _, expected, _ in sweep for rule, key in expected if rule == "quiet"}
    assert kinds == {"stopped", "nothing_changed"}
    stall_from = END - timedelta(days=DAYS) + timedelta(days=DAYS * 0.7)  # story.add_alert_incidents
    during = [found for t, _, found in sweep if stall_from + timedelta(hours=2.5) < t < stall_from + timedelta(hours=6)]
    assert during
    for found in during:
        quiet = [a for a in found if a.rule == "quiet" and a.job == sandbox["job_id"]]
        assert [a.key.rsplit("/", 1)[1] for a in quiet] == ["stopped"]
        assert quiet[0].severity == "warning" and "stopped" in quiet[0].message


def test_quarantine_alert_says_reason_since_and_next_attempt(sweep, story_sim):
    (period,) = story_sim.truth["quarantine"]
    began = datetime.fromisoformat(period["began"][:19]).replace(tzinfo=timezone.utc)
    inside = [found for _, _, found in sweep if any(a.rule == "quarantine" for a in found)]
    assert inside
    for found in inside:
        (alert,) = [a for a in found if a.rule == "quarantine"]
        assert alert.severity == "critical" and period["reason"] in alert.message
        assert abs(alert.first_seen - began) < timedelta(minutes=1)
        assert "next attempt" in alert.message and alert.url.startswith("/cycles?")
        assert f"sp={period['service_principal_id']}" in alert.url


def test_alert_fields(sweep):
    for t, _, found in sweep:
        for a in found:
            assert a.severity in SEVERITIES and a.url.startswith("/") and a.message and a.action
            assert a.first_seen <= t + timedelta(seconds=1) and a.last_seen <= t + timedelta(seconds=1)
            assert a.first_seen.tzinfo is not None
            doc = a.as_json()
            assert set(doc) >= {"rule", "severity", "key", "app", "job", "first_seen", "last_seen", "message", "url"}
            assert doc["first_seen"].endswith("Z")
        counts = [a for a in found if a.rule in ("violation", "quarantine_risk", "new_error", "unlogged_writes")]
        assert all(isinstance(a.identities, int) and a.identities >= 1 for a in counts)


def test_disabled_rule_and_severity_override(story_db, sweep):
    t = next(t for t, _, found in sweep if {a.rule for a in found} >= {"violation", "quarantine"})
    settings = load_alert_settings({"alerts": {"rules": {"violation": {"enabled": False},
                                                         "quarantine": {"severity": "info"}}}})
    with read_connection(story_db) as con:
        found = evaluate(con, settings, t)
    assert not [a for a in found if a.rule == "violation"]
    assert {a.severity for a in found if a.rule == "quarantine"} == {"info"}


def test_cli_json_at_times_matches_the_story(story_sim, story_db, sweep, tmp_path):
    """`ingest alerts --dry-run --format json --at T`, run as a user would: one JSON object per line per active alert,
    the same set as the truth; nothing is written to the store."""
    config = tmp_path / "provlens.toml"
    config.write_text("[alerts.rules.quarantine_risk]\nevaluation_from = 5\ntotal_failures = 40\n"
                      "absolute_failures = 60\n", encoding="utf-8")
    picks = [next(s for s in sweep if any(a.rule == r for a in s[2])) for r in ("quarantine", "quarantine_risk")]
    picks.append(sweep[-1])
    before = Path(story_db).stat().st_mtime_ns
    for t, expected, _ in picks:
        proc = run_cli("ingest", "alerts", "--db", story_db, "--config", str(config), "--dry-run", "--format", "json",
                       "--at", t.isoformat())
        assert proc.returncode == 0, proc.stderr
        lines = [json.loads(line) for line in proc.stdout.splitlines()]
        assert {(d["rule"], d["key"]) for d in lines} == expected
        assert len(lines) == len(expected)
    assert Path(story_db).stat().st_mtime_ns == before


def _t(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.rstrip("Z")[:26]).replace(tzinfo=timezone.utc) if text else None


def test_a_new_duplicate_user_name_is_counted_in_its_apps_alert_until_fixed(sweep, story_sim):
    """A joiner whose userName an account in the app already holds, a day into the story, fixed later: while it is
    open, its app's duplicate-userName alert is active and counts exactly the identities the truth has open then."""
    start = END - timedelta(days=DAYS)
    (v, *_) = [v for v in story_sim.truth["violations"] if v["kind"] == "duplicate_user_name" and v["resolved_at"]
               and _t(v["first_seen"]) > start + timedelta(days=1)]
    sp = v["service_principal_id"]
    same = [w for w in story_sim.truth["violations"] if w["kind"] == "duplicate_user_name"
            and w["service_principal_id"] == sp]
    checked = 0
    for t, _, found in sweep:
        mine = [a for a in found if a.rule == "violation" and a.key.startswith(f"{sp}/")
                and a.key.endswith("/duplicate_user_name")]
        assert len(mine) <= 1
        open_then = [w for w in same if _t(w["first_seen"]) <= t and (not w["resolved_at"] or t < _t(w["resolved_at"]))]
        assert bool(mine) == bool(open_then)
        if mine:
            assert mine[0].identities == len(open_then)
            assert abs(mine[0].first_seen - min(_t(w["first_seen"]) for w in open_then)) < timedelta(seconds=1)
            assert mine[0].url.startswith("/violations?") and f"sp={sp}" in mine[0].url
        if _t(v["first_seen"]) <= t < _t(v["resolved_at"]):
            assert mine  # the new one is counted in an active alert
            checked += 1
    assert checked >= 3


def test_risk_and_spike_come_from_the_stories_incidents(sweep, story_sim):
    """Anchored on the story itself, not on a formula: the escrow nears the (scaled) thresholds only after the refused
    rename (8 hours, then the escrowed retries: at most 12 cycles of 40 min apart); failures spike only then or in
    the credential episode."""
    start = END - timedelta(days=DAYS)
    rename = start + timedelta(days=DAYS * 0.25)  # story.add_alert_incidents
    (period,) = story_sim.truth["quarantine"]
    episode = (_t(period["first_failure_at"]) - timedelta(hours=1),
               _t(period["ended"]) + timedelta(hours=24))
    risky = [t for t, _, found in sweep if any(a.rule == "quarantine_risk" for a in found)]
    assert risky and all(rename <= t <= rename + timedelta(hours=16) for t in risky)
    spikes = [t for t, _, found in sweep if any(a.rule == "failure_spike" for a in found)]
    assert spikes and all(rename <= t <= rename + timedelta(hours=24) or episode[0] <= t <= episode[1]
                          for t in spikes)
    assert any(rename <= t <= rename + timedelta(hours=24) for t in spikes)
