"""A real process for the alert crash tests: ``python -m tests.alerts_child DB ALERTS.json NOW`` runs
:func:`ingest.alerts.notify.process` on the alerts in the JSON file (Alert fields, times ISO-8601) with the
configuration of ``PROVLENS_CONFIG`` (provlens.toml), and exits with its exit code. The tests SIGKILL it at the
hook ``PROVLENS_ALERTS_TEST_PAUSE`` names."""

from __future__ import annotations

import json
import sys
from datetime import datetime

from ingest.alerts import notify
from ingest.alerts.model import Alert
from ingest.config import load_toml


def main(db: str, alerts_file: str, now: str) -> int:
    items = json.loads(open(alerts_file, encoding="utf-8").read())
    alerts = [Alert(**{**item, "first_seen": datetime.fromisoformat(item["first_seen"]),
                       "last_seen": datetime.fromisoformat(item["last_seen"])}) for item in items]
    return notify.process(db, alerts, now=datetime.fromisoformat(now), config=load_toml())


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
