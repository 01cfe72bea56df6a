"""The shape of one alert, shared by the rules (which find them), the state (which records them) and the delivery
(which sends them). Plain data: no database, no network."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

# The rules, by name (issue 24). `[alerts.rules.<name>]` in provlens.toml sets each one's thresholds.
RULES = ("quarantine", "quarantine_risk", "quiet", "stale_data", "new_error", "failure_spike", "credential",
         "violation", "unlogged_writes", "preflight")
SEVERITIES = ("critical", "warning", "info")
# What a notification says about an alert: it fired, it is still active (re-sent after an interval), it ended.
NOTIFICATION_KINDS = ("fired", "reminder", "resolved")


@dataclass(frozen=True)
class Alert:
    """One active condition found by one rule. (rule, key) identifies it across evaluations."""

    rule: str                  # one of RULES
    severity: str              # one of SEVERITIES
    key: str                   # stable within the rule, e.g. "<servicePrincipalId>/<jobId>[/<error code>]"
    app: str | None            # the application (service principal display name, else its id)
    job: str | None            # the provisioning job id
    first_seen: datetime       # UTC: when the condition's evidence began
    last_seen: datetime        # UTC: the newest evidence of it
    message: str               # one line: what is wrong, since when
    action: str                # the recommended action, one line
    identities: int | None     # how many identities are affected, when that applies
    url: str                   # the dashboard view with its filters, relative ("/failures?since=..."); the
                               # delivery prepends PROVLENS_PUBLIC_URL

    def as_json(self) -> dict[str, Any]:
        """The `python -m ingest alerts --format json` object (one per active alert)."""
        return {"rule": self.rule, "severity": self.severity, "key": self.key, "app": self.app, "job": self.job,
                "first_seen": _iso(self.first_seen), "last_seen": _iso(self.last_seen), "message": self.message,
                "url": self.url, "action": self.action, "identities": self.identities}


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")
