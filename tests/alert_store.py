"""A store with alert history for the dashboard tests (issue 24): three evaluations over a day, delivered to a real
local JSON webhook (target "ops") and to a port where nothing listens (target "pager", critical only), so the store
holds active and resolved episodes and sent, pending and given-up notifications."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from ingest.alerts import notify
from ingest.alerts.model import Alert
from tests.alert_receivers import Receiver

T0 = datetime(2026, 12, 6, 8, 0, tzinfo=timezone.utc)


def _alert(rule: str, severity: str, n: int) -> Alert:
    return Alert(rule=rule, severity=severity, key=f"sp-{n}/job-{n}", app=f"App {n}", job=f"job-{n}",
                 first_seen=T0 - timedelta(hours=n), last_seen=T0, message=f"{rule} on App {n}: something is wrong",
                 action=f"Do the {rule} fix", identities=10 * n, url=f"/failures?app=sp-{n}&rule={rule}")


QUARANTINE, VIOLATION, NEW_ERROR, CREDENTIAL = (_alert("quarantine", "critical", 1), _alert("violation", "warning", 2),
                                                _alert("new_error", "info", 3), _alert("credential", "critical", 4))


def build(db, monkeypatch) -> None:
    with Receiver() as ops:
        monkeypatch.setenv("PROVLENS_OPS_HOOK", f"json://127.0.0.1:{ops.port}/ops")
        monkeypatch.setenv("PROVLENS_PAGER_HOOK", "json://127.0.0.1:9/pager")
        config = {"alerts": {"retry_wait_seconds": 0, "delivery_attempts": 1, "targets": [
            {"name": "ops", "url_env": "PROVLENS_OPS_HOOK"},
            {"name": "pager", "url_env": "PROVLENS_PAGER_HOOK", "severities": ["critical"]}]}}
        notify.process(db, [QUARANTINE, VIOLATION, NEW_ERROR], now=T0, config=config)
        notify.process(db, [QUARANTINE, VIOLATION], now=T0 + timedelta(hours=1), config=config)
        notify.process(db, [QUARANTINE, CREDENTIAL], now=T0 + timedelta(hours=25), config=config)
