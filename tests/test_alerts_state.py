"""Alert state over a real DuckDB file, delivered to a real local JSON webhook (issue 24, "state, not spam"): a firing
alert is sent once, re-sent after the re-notify interval while active, its resolution sent once; the same
evaluation again sends and changes nothing; a target takes only its rules and severities; a failed delivery stays
pending and the next run delivers it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import duckdb
import pytest

from ingest import exitcodes
from ingest.alerts import notify
from ingest.alerts.model import Alert
from tests.alert_receivers import Receiver

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=timezone.utc)


def alert(rule="quarantine", key="sp-1/job-1", severity="critical", **kw) -> Alert:
    fields = dict(app="Leapsome", job="job-1", first_seen=T0 - timedelta(hours=3), last_seen=T0,
                  message=f"{rule} on Leapsome ({key})", action="Renew the SCIM token in the app's provisioning page",
                  identities=17, url=f"/cycles?app=sp-1&rule={rule}")
    fields.update(kw)
    return Alert(rule=rule, severity=severity, key=key, **fields)


def config(*targets: dict, **alerts) -> dict:
    return {"alerts": {"retry_wait_seconds": 0, "delivery_attempts": 2, **alerts, "targets": list(targets)}}


def rows(db, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


def table_dump(db) -> tuple[list[tuple], list[tuple]]:
    return (rows(db, "SELECT * FROM alerts ORDER BY episode_id"),
            rows(db, "SELECT * FROM alert_deliveries ORDER BY delivery_id"))


def titles(receiver: Receiver) -> list[str]:
    return [r.json()["title"] for r in receiver.requests]


@pytest.fixture
def hook(monkeypatch):
    with Receiver() as receiver:
        monkeypatch.setenv("PROVLENS_TEST_HOOK", f"json://127.0.0.1:{receiver.port}/hook")
        yield receiver


def test_fired_once_reminded_after_interval_resolved_once(tmp_path, hook, monkeypatch):
    monkeypatch.delenv("PROVLENS_PUBLIC_URL", raising=False)
    db = tmp_path / "store.duckdb"
    cfg = config({"name": "ops", "url_env": "PROVLENS_TEST_HOOK"}, renotify_hours=6,
                 public_url="https://provlens.example.org/")
    a = alert()
    assert notify.process(db, [a], now=T0, config=cfg) == exitcodes.OK
    assert len(hook.requests) == 1
    fired = hook.requests[0].json()
    assert fired["title"].startswith("provlens: [CRITICAL] quarantine on Leapsome")
    assert fired["type"] == "failure"
    body = fired["message"]
    # what, since when, how many identities, the action, the link (public_url + the alert's view)
    assert a.message in body and "2026-12-07 06:00 UTC" in body and "17" in body and a.action in body
    assert "https://provlens.example.org/cycles?app=sp-1&rule=quarantine" in body

    # The same evaluation again: nothing sent, nothing changed in the store.
    before = table_dump(db)
    assert notify.process(db, [a], now=T0, config=cfg) == exitcodes.OK
    assert table_dump(db) == before and len(hook.requests) == 1

    # Still active, before the interval: nothing; at the interval: one reminder; again: nothing more.
    assert notify.process(db, [a], now=T0 + timedelta(hours=5, minutes=59), config=cfg) == exitcodes.OK
    assert len(hook.requests) == 1
    assert notify.process(db, [a], now=T0 + timedelta(hours=6), config=cfg) == exitcodes.OK
    assert notify.process(db, [a], now=T0 + timedelta(hours=6), config=cfg) == exitcodes.OK
    assert len(hook.requests) == 2 and titles(hook)[1].startswith("provlens: Still active: [CRITICAL] quarantine")

    # Gone: one resolution, then nothing.
    assert notify.process(db, [], now=T0 + timedelta(hours=7), config=cfg) == exitcodes.OK
    assert notify.process(db, [], now=T0 + timedelta(hours=8), config=cfg) == exitcodes.OK
    assert len(hook.requests) == 3
    resolved = hook.requests[2].json()
    assert resolved["title"] == "provlens: Resolved: quarantine on Leapsome" and resolved["type"] == "success"
    assert "2026-12-07 16:00 UTC" in resolved["message"]  # resolved at the evaluation's time

    episodes = rows(db, "SELECT rule, key, fired_at, resolved_at, last_notified_at FROM alerts")
    assert episodes == [("quarantine", "sp-1/job-1", T0, T0 + timedelta(hours=7), T0 + timedelta(hours=6))]
    kinds = rows(db, "SELECT kind, status, attempts FROM alert_deliveries ORDER BY delivery_id")
    assert kinds == [("fired", "sent", 1), ("reminder", "sent", 1), ("resolved", "sent", 1)]

    # Active again: a new episode, fired again.
    assert notify.process(db, [a], now=T0 + timedelta(hours=9), config=cfg) == exitcodes.OK
    assert len(hook.requests) == 4 and titles(hook)[3].startswith("provlens: [CRITICAL]")
    assert rows(db, "SELECT count(*), count(resolved_at) FROM alerts") == [(2, 1)]


def test_targets_take_their_rules_and_severities(tmp_path, monkeypatch):
    db = tmp_path / "store.duckdb"
    with Receiver() as everything, Receiver() as critical_only, Receiver() as violations_only:
        for name, receiver in (("ALL", everything), ("CRIT", critical_only), ("VIOL", violations_only)):
            monkeypatch.setenv(f"PROVLENS_TEST_{name}", f"json://127.0.0.1:{receiver.port}/")
        cfg = config({"name": "all", "url_env": "PROVLENS_TEST_ALL"},
                     {"name": "crit", "url_env": "PROVLENS_TEST_CRIT", "severities": ["critical"]},
                     {"name": "viol", "url_env": "PROVLENS_TEST_VIOL", "rules": ["violation"]})
        alerts = [alert("quarantine", "q", "critical"), alert("violation", "v", "warning"),
                  alert("new_error", "e", "info")]
        assert notify.process(db, alerts, now=T0, config=cfg) == exitcodes.OK
        assert sorted(t.split("] ")[1].split(" on")[0] for t in titles(everything)) == [
            "new_error", "quarantine", "violation"]
        assert [t.split("] ")[1].split(" on")[0] for t in titles(critical_only)] == ["quarantine"]
        assert [t.split("] ")[1].split(" on")[0] for t in titles(violations_only)] == ["violation"]

        # The violation turns critical: the critical-only target, never told of it, now gets its "fired" message;
        # the others hear nothing new (no reminder is due).
        alerts[1] = alert("violation", "v", "critical")
        assert notify.process(db, alerts, now=T0 + timedelta(hours=1), config=cfg) == exitcodes.OK
        assert len(everything.requests) == 3 and len(violations_only.requests) == 1
        assert [t.split("] ")[1].split(" on")[0] for t in titles(critical_only)] == ["quarantine", "violation"]

        # Resolutions go to the targets that were told of each alert.
        assert notify.process(db, [], now=T0 + timedelta(hours=2), config=cfg) == exitcodes.OK
        resolved = {name: sorted(t.split("Resolved: ")[1].split(" on")[0] for t in titles(r) if "Resolved" in t)
                    for name, r in (("all", everything), ("crit", critical_only), ("viol", violations_only))}
        assert resolved == {"all": ["new_error", "quarantine", "violation"], "crit": ["quarantine", "violation"],
                            "viol": ["violation"]}


def test_failed_delivery_stays_pending_and_next_run_delivers_it(tmp_path, monkeypatch, capfd):
    db = tmp_path / "store.duckdb"
    with Receiver(statuses=[500, 500, 503, 502]) as receiver:
        monkeypatch.setenv("PROVLENS_TEST_HOOK", f"json://127.0.0.1:{receiver.port}/")
        cfg = config({"name": "ops", "url_env": "PROVLENS_TEST_HOOK"})
        a = alert()
        assert notify.process(db, [a], now=T0, config=cfg) == exitcodes.PARTIAL  # 2 tries, both refused
        assert len(receiver.requests) == 2
        err = capfd.readouterr().err
        assert "not delivered after 2 tries" in err and "the next run tries again" in err
        assert rows(db, "SELECT status, attempts, sent_at IS NULL, last_error LIKE '%500%' FROM alert_deliveries") \
            == [("pending", 2, True, True)]
        # The next run (same alert, no new notification due) sends the pending one: 503, 502, then gives the run
        # up; the one after delivers it.
        assert notify.process(db, [a], now=T0 + timedelta(minutes=40), config=cfg) == exitcodes.PARTIAL
        assert notify.process(db, [a], now=T0 + timedelta(minutes=80), config=cfg) == exitcodes.OK
        assert len(receiver.requests) == 5
        assert rows(db, "SELECT kind, status, attempts FROM alert_deliveries") == [("fired", "sent", 5)]
        assert notify.process(db, [a], now=T0 + timedelta(minutes=120), config=cfg) == exitcodes.OK
        assert len(receiver.requests) == 5


def test_undeliverable_notification_is_given_up_after_the_interval(tmp_path, monkeypatch):
    db = tmp_path / "store.duckdb"
    monkeypatch.setenv("PROVLENS_TEST_HOOK", "json://127.0.0.1:9/")  # discard port: nothing listens
    cfg = config({"name": "ops", "url_env": "PROVLENS_TEST_HOOK"}, renotify_hours=2, delivery_attempts=1)
    a = alert()
    assert notify.process(db, [a], now=T0, config=cfg) == exitcodes.PARTIAL
    assert notify.process(db, [a], now=T0 + timedelta(hours=2), config=cfg) == exitcodes.PARTIAL
    # The fired one is given up; the reminder recorded at the interval takes its place (still undelivered).
    assert rows(db, "SELECT kind, status, last_error LIKE '%given up%' FROM alert_deliveries ORDER BY delivery_id") \
        == [("fired", "failed", True), ("reminder", "pending", False)]


@pytest.mark.parametrize(("cfg", "env", "expected"), [
    ({"alerts": {"renotify": 3}}, {}, "[alerts]: unknown key 'renotify'"),
    ({"alerts": {"public_url": "provlens.example.org"}}, {}, "must start with https:// or http://"),
    ({"alerts": {"renotify_hours": "daily"}}, {}, "renotify_hours must be a number"),
    (config({"name": "ops", "url_env": "PROVLENS_TEST_MISSING"}), {}, "PROVLENS_TEST_MISSING is not set"),
    (config({"name": "ops", "url_env": "PROVLENS_TEST_HOOK", "channel": "x"}), {}, "unknown key 'channel'"),
    (config({"name": "ops", "url_env": "PROVLENS_TEST_HOOK", "rules": ["quarantined"]}), {},
     "unknown rule 'quarantined'"),
    (config({"name": "ops", "url_env": "PROVLENS_TEST_BAD"}), {"PROVLENS_TEST_BAD": "nosuchscheme://sekrit-value-1"},
     "the value of PROVLENS_TEST_BAD is not an Apprise URL"),
])
def test_configuration_errors_are_one_line_naming_the_variable(tmp_path, monkeypatch, capfd, cfg, env, expected):
    monkeypatch.setenv("PROVLENS_TEST_HOOK", "json://127.0.0.1:9/")
    monkeypatch.delenv("PROVLENS_PUBLIC_URL", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    db = tmp_path / "store.duckdb"
    assert notify.process(db, [alert()], now=T0, config=cfg) == exitcodes.USAGE
    err = capfd.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1 and "sekrit" not in err
    assert not db.exists()  # nothing recorded under a bad configuration


def test_notification_for_a_target_no_longer_configured_is_given_up(tmp_path, hook):
    db = tmp_path / "store.duckdb"
    cfg = config({"name": "ops", "url_env": "PROVLENS_TEST_HOOK"}, {"name": "old", "url_env": "PROVLENS_TEST_OLD"})
    # the "old" target's variable points at a port where nothing listens: its notification stays pending
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PROVLENS_TEST_OLD", "json://127.0.0.1:9/")
        assert notify.process(db, [alert()], now=T0, config=cfg) == exitcodes.PARTIAL
    cfg["alerts"]["targets"].pop()
    assert notify.process(db, [alert()], now=T0 + timedelta(minutes=40), config=cfg) == exitcodes.PARTIAL
    assert rows(db, "SELECT target, status, last_error FROM alert_deliveries ORDER BY delivery_id") == [
        ("ops", "sent", None), ("old", "failed", "target 'old' is no longer configured")]
    assert notify.process(db, [alert()], now=T0 + timedelta(minutes=80), config=cfg) == exitcodes.OK
    assert len(hook.requests) == 1


def test_after_ingest_evaluates_and_processes_and_never_raises(tmp_path, hook, monkeypatch, capfd):
    """The glue the ingest commands call, with the real rules on a real demo store: what it records and sends is
    exactly what ingest/alerts/rules.py finds active at that time (one message per alert to the one target); a
    second call at the same time sends nothing; an error in the rules is one line, never an exception."""
    from ingest.alerts import rules
    from ingest.alerts.settings import load_alert_settings
    from ingest.dbfile import read_connection
    from ingest.demo import build_demo

    db = tmp_path / "store.duckdb"
    end = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)
    build_demo(str(db), users=60, days=5, end=end, quiet=True)
    cfg = config({"name": "ops", "url_env": "PROVLENS_TEST_HOOK"})
    with read_connection(str(db)) as con:
        expected = {(a.rule, a.key) for a in rules.evaluate(con, load_alert_settings(cfg), end)}
    assert expected  # the demo has open violations at its end
    notify.after_ingest(db, cfg, now=end)
    assert set(rows(db, "SELECT rule, key FROM alerts WHERE resolved_at IS NULL")) == expected
    assert len(hook.requests) == len(expected)
    notify.after_ingest(db, cfg, now=end)
    assert len(hook.requests) == len(expected)  # the same evaluation again: nothing new to send

    def broken(con, settings, now):
        raise ValueError("a rule failed\nwith detail")
    monkeypatch.setattr(rules, "evaluate", broken)
    capfd.readouterr()
    notify.after_ingest(db, cfg, now=end)  # no exception
    err = capfd.readouterr().err
    assert err == "alerts: error: alerts not evaluated (ValueError: a rule failed)\n"


def test_one_process_at_a_time_delivers(tmp_path, hook, monkeypatch, capfd):
    """While another process holds ``<db>.alerts.lock`` (a real flock, taken by a child process), a run waits, then
    leaves the work to it: nothing recorded, nothing sent twice. Once it is released, the next run does the work."""
    import subprocess
    import sys

    db = tmp_path / "store.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time\n"
                               f"fd = os.open({str(db) + '.alerts.lock'!r}, os.O_RDWR | os.O_CREAT)\n"
                               "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setattr(notify, "LOCK_WAIT_S", 0.3)
        cfg = config({"name": "ops", "url_env": "PROVLENS_TEST_HOOK"})
        assert notify.process(db, [alert()], now=T0, config=cfg) == exitcodes.OK
        assert "another provlens process is delivering alerts" in capfd.readouterr().err
        assert not db.exists() and hook.requests == []
    finally:
        holder.kill()
        holder.wait()
    assert notify.process(db, [alert()], now=T0, config=cfg) == exitcodes.OK
    assert len(hook.requests) == 1
