"""A scheduled `ingest run` with an alert target configured (issue 24, "done when"): each alert is delivered once,
and its resolution once, over real runs of the CLI, a real DuckDB file and a real HTTP receiver (Apprise's generic
JSON webhook).

What was delivered is compared with what `python -m ingest alerts --dry-run --format json` (the rules, tested
against the simulator's truth in tests/test_alert_rules.py) says is active after each run; the resolution is made
by loading one success for a violating identity, as a later Entra cycle would log it.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

import duckdb

from ingest import exitcodes
from queries.alerts import OPEN_VIOLATIONS
from tests.alert_receivers import Receiver
from tests.conftest import run_cli


def _config(path, data_dir, port: int) -> None:
    path.write_text(f"""
[[sources]]
type = "files"
paths = ["{data_dir}"]

[alerts]
retry_wait_seconds = 0
delivery_attempts = 2

[[alerts.targets]]
name = "ops"
url_env = "PROVLENS_TEST_OPS_HOOK"
""", encoding="utf-8")


def _active(db, config) -> list[dict]:
    proc = run_cli("ingest", "alerts", "--dry-run", "--format", "json", "--db", str(db), "--config", str(config))
    assert proc.returncode == exitcodes.OK, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def _what(body: str) -> str:
    return next(line for line in body.splitlines() if line.startswith("- **What:** "))[len("- **What:** "):]


def test_scheduled_run_delivers_each_alert_once_and_its_resolution_once(sim_dir, tmp_path):
    data = tmp_path / "incoming"
    data.mkdir()
    for f in (sim_dir / "graph").iterdir():
        (data / f.name).symlink_to(f)
    db, config = tmp_path / "s.duckdb", tmp_path / "provlens.toml"
    with Receiver() as hook:
        env = {"PROVLENS_TEST_OPS_HOOK": f"json://127.0.0.1:{hook.port}/ops"}
        _config(config, data, hook.port)
        run = ("ingest", "run", "--config", str(config), "--db", str(db), "-q")

        prom = tmp_path / "provlens.prom"
        assert run_cli(*run, "--metrics-textfile", str(prom), env=env).returncode == exitcodes.OK
        active = _active(db, config)
        assert any(a["rule"] == "violation" for a in active)  # the simulator plants duplicate userNames
        # the job's metrics count the alerts firing now, per rule (every rule gets a sample)
        from prometheus_client.parser import text_string_to_metric_families

        from ingest.alerts.model import RULES

        gauge = {s.labels["rule"]: s.value for f in text_string_to_metric_families(prom.read_text(encoding="utf-8"))
                 if f.name == "provlens_active_alerts" for s in f.samples}
        assert gauge == {rule: Counter(a["rule"] for a in active).get(rule, 0) for rule in RULES}
        fired = [r.json() for r in hook.requests]
        assert Counter(_what(m["message"]) for m in fired) == Counter(a["message"] for a in active)

        assert run_cli(*run, env=env).returncode == exitcodes.OK  # the next round, nothing changed
        assert len(hook.requests) == len(fired)

        # a later cycle provisions one violating identity: its alert resolves, and only that one is sent
        gone = next(a for a in active if a["rule"] == "violation" and a["identities"] == 1)
        sp, job, kind = gone["key"].split("/")
        with duckdb.connect(str(db), read_only=True) as con:  # the one identity of that app, job and kind
            (source_id,) = {r[0] for r in con.execute(
                f"SELECT source_id FROM ({OPEN_VIOLATIONS}) WHERE service_principal_id = $sp AND job_id = $job",
                {"now": datetime.now(timezone.utc), "kinds": [kind], "sp": sp, "job": job}).fetchall()}
            raw = con.execute("SELECT raw FROM events WHERE service_principal_id = ? AND job_id = ? AND source_id = ? "
                              "ORDER BY activity_time DESC LIMIT 1", [sp, job, source_id]).fetchone()[0]
        event = json.loads(raw)
        event.update(id=str(uuid.uuid4()), provisioningSteps=[],
                     activityDateTime=(datetime.now(timezone.utc) - timedelta(minutes=5)).isoformat())
        event["provisioningStatusInfo"] = {"status": "success", "errorInformation": None}
        (data / "later-cycle.json").write_text(json.dumps({"value": [event]}), encoding="utf-8")

        assert run_cli(*run, env=env).returncode == exitcodes.OK
        now_active = {a["key"] for a in _active(db, config)}
        assert now_active == {a["key"] for a in active} - {gone["key"]}
        new = [r.json() for r in hook.requests[len(fired):]]
        assert len(new) == 1 and new[0]["title"].startswith("provlens: Resolved: violation")
        assert gone["message"] in new[0]["message"]

        assert run_cli(*run, env=env).returncode == exitcodes.OK  # and once only
        assert len(hook.requests) == len(fired) + 1
