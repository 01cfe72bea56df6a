"""The alert rules' settings: ``[alerts.rules.<name>]`` in provlens.toml (each rule's ``enabled``, ``severity`` and
thresholds), with defaults that suit a job on Entra's 40-minute cycle. Targets, the public URL and re-notification
are read elsewhere (ingest/alerts/targets.py, notify.py); this module reads only the rules.

An unknown rule or key, or a value of the wrong type, is a :class:`ingest.config.ConfigError` naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ingest.alerts.model import RULES, SEVERITIES
from ingest.config import ConfigError

# Each rule's thresholds and their defaults (the README's "Alert rules" table says what each means).
DEFAULT_THRESHOLDS: dict[str, dict[str, Any]] = {
    "quarantine": {},
    # Microsoft's documented escrow thresholds (ingest/alerts/rules.py cites the doc); warn_at: the fraction of a
    # threshold at which provlens warns.
    "quarantine_risk": {"evaluation_from": 5000, "failed_share": 0.40, "total_failures": 40000,
                        "absolute_failures": 60000, "warn_at": 0.8},
    "quiet": {"intervals": 3, "default_interval_minutes": 40},
    "stale_data": {"max_age_hours": 3.0, "sources": ["graph", "blobs", "scim"]},
    "new_error": {"lookback_days": 14, "active_hours": 24.0, "min_history_hours": 24.0},
    "failure_spike": {"cycles": 3, "baseline_days": 7, "factor": 3.0, "min_rate": 0.2, "min_failures": 5},
    "credential": {},
    "violation": {"kinds": ["duplicate_user_name", "non_work_email"]},
    "unlogged_writes": {"window_hours": 24.0, "min_writes": 1},
    # issue 26: the latest preflight run of each app/job; only_new: only findings its previous run did not have.
    "preflight": {"kinds": ["duplicate_user_name", "target_conflict", "missing_required", "non_work_email",
                            "default_access_only", "nested_group_only", "disabled_but_active_in_target", "orphan"],
                  "only_new": True, "min_findings": 1},
}

DEFAULT_SEVERITY = {
    "quarantine": "critical", "quarantine_risk": "warning", "quiet": "warning", "stale_data": "warning",
    "new_error": "warning", "failure_spike": "warning", "credential": "critical", "violation": "warning",
    "unlogged_writes": "warning", "preflight": "warning",
}

VIOLATION_KINDS = ("duplicate_user_name", "duplicate_group_name", "non_work_email", "other_rejected_value")


@dataclass(frozen=True)
class RuleSettings:
    """One rule: on or off, its severity (None: the rule's own, which may depend on what it found), thresholds."""

    enabled: bool = True
    severity: str | None = None
    thresholds: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __getitem__(self, key: str) -> Any:
        return self.thresholds[key]


@dataclass(frozen=True)
class AlertSettings:
    """Every rule's settings, by rule name."""

    rules: Mapping[str, RuleSettings]

    def rule(self, name: str) -> RuleSettings:
        return self.rules[name]

    def enabled(self, name: str) -> bool:
        return self.rules[name].enabled

    def severity(self, name: str, default: str | None = None) -> str:
        return self.rules[name].severity or default or DEFAULT_SEVERITY[name]


def _check_type(key: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, not {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{key} must be a whole number >= 0, not {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"{key} must be a number >= 0, not {value!r}")
        return float(value)
    if isinstance(default, list):
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{key} must be a list of names, not {value!r}")
        return tuple(value)
    return value


def load_alert_settings(config: dict) -> AlertSettings:
    """The rules' settings from a parsed provlens.toml (``ingest.config.load_toml``); defaults for what is unset."""
    alerts = config.get("alerts", {}) if isinstance(config, dict) else {}
    if not isinstance(alerts, dict):
        raise ConfigError("[alerts] in provlens.toml must be a table")
    given = alerts.get("rules", {})
    if not isinstance(given, dict):
        raise ConfigError("alerts.rules in provlens.toml must be a table of [alerts.rules.<name>] tables")
    for name in given:
        if name not in RULES:
            raise ConfigError(f"alerts.rules.{name}: unknown rule (the rules are {', '.join(RULES)})")
    rules: dict[str, RuleSettings] = {}
    for name in RULES:
        table = given.get(name, {})
        prefix = f"alerts.rules.{name}"
        if not isinstance(table, dict):
            raise ConfigError(f"{prefix} must be a table")
        defaults = DEFAULT_THRESHOLDS[name]
        thresholds = {k: (tuple(v) if isinstance(v, list) else v) for k, v in defaults.items()}
        enabled, severity = True, None
        for key, value in table.items():
            full = f"{prefix}.{key}"
            if key == "enabled":
                if not isinstance(value, bool):
                    raise ConfigError(f"{full} must be true or false, not {value!r}")
                enabled = value
            elif key == "severity":
                if value not in SEVERITIES:
                    raise ConfigError(f"{full} must be one of {', '.join(SEVERITIES)}, not {value!r}")
                severity = value
            elif key in defaults:
                thresholds[key] = _check_type(full, value, defaults[key])
            else:
                known = ", ".join(["enabled", "severity", *defaults])
                raise ConfigError(f"{full}: unknown setting (known: {known})")
        if name == "violation":
            bad = [k for k in thresholds["kinds"] if k not in VIOLATION_KINDS]
            if bad:
                raise ConfigError(f"{prefix}.kinds: unknown kind {bad[0]!r} (known: {', '.join(VIOLATION_KINDS)})")
        for key in ("warn_at", "failed_share", "min_rate"):
            if key in thresholds and thresholds[key] > 1:
                raise ConfigError(f"{prefix}.{key} must be a fraction between 0 and 1, not {thresholds[key]!r}")
        rules[name] = RuleSettings(enabled=enabled, severity=severity, thresholds=MappingProxyType(thresholds))
    return AlertSettings(rules=MappingProxyType(rules))
