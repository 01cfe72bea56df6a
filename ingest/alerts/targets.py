"""Where alerts go: the ``[alerts]`` section of provlens.toml and its ``[[alerts.targets]]``, checked.

Each target names the environment variable that holds its Apprise URL (``url_env``); the URL carries the secret
(a webhook signature, an SMTP password), so it is read from the environment only, never from the file, and no
message here ever quotes it: errors name the variable, never its value.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ingest.alerts.model import RULES, SEVERITIES, Alert
from ingest.config import ConfigError

PUBLIC_URL_ENV = "PROVLENS_PUBLIC_URL"
DEFAULT_RENOTIFY_HOURS = 24.0
DEFAULT_DELIVERY_ATTEMPTS = 4  # tries per delivery within one run (tenacity), then the next run tries again
DEFAULT_RETRY_WAIT_SECONDS = 2.0  # exponential backoff: 2, 4, 8 s between tries (capped at 60 s)

# [alerts] keys: these, and `rules` (the rules' thresholds, ingest/alerts/settings.py).
ALERT_KEYS = {"public_url", "renotify_hours", "targets", "rules", "delivery_attempts", "retry_wait_seconds"}
TARGET_KEYS = {"name", "url_env", "rules", "severities"}


@dataclass(frozen=True)
class Target:
    """One destination: its name (used in the store and by ``--test``), the variable holding its Apprise URL, and
    the rules and severities it takes (empty: all)."""

    name: str
    url_env: str
    rules: tuple[str, ...] = ()
    severities: tuple[str, ...] = ()

    def accepts(self, rule: str, severity: str) -> bool:
        return (not self.rules or rule in self.rules) and (not self.severities or severity in self.severities)

    def url(self) -> str:
        """The Apprise URL from the environment (a secret: never print, log or store it)."""
        value = os.environ.get(self.url_env, "").strip()
        if not value:
            raise ConfigError(f"alert target {self.name!r}: the environment variable {self.url_env} is not set "
                              "(it must hold the target's Apprise URL)")
        return value


@dataclass(frozen=True)
class AlertsConfig:
    public_url: str
    renotify_hours: float
    delivery_attempts: int
    retry_wait_seconds: float
    targets: tuple[Target, ...]

    def target(self, name: str) -> Target:
        for target in self.targets:
            if target.name == name:
                return target
        known = ", ".join(t.name for t in self.targets) or "none configured"
        raise ConfigError(f"no alert target named {name!r} in [[alerts.targets]] (targets: {known})")

    def link(self, alert_url: str | None) -> str:
        """The dashboard link of an alert: the public URL plus the view's relative URL."""
        url = alert_url or "/"
        if not self.public_url:
            return url
        return self.public_url.rstrip("/") + "/" + url.lstrip("/")


def _number(section: str, key: str, value: Any, *, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise ConfigError(f"{section} {key} must be a number >= {minimum:g}")
    return float(value)


def _names(where: str, key: str, value: Any, allowed: tuple[str, ...]) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: {key} must be a list of names ({', '.join(allowed)})")
    unknown = [v for v in value if v not in allowed]
    if unknown:
        raise ConfigError(f"{where}: unknown {key[:-1]} {unknown[0]!r} (known: {', '.join(allowed)})")
    return tuple(value)


def load_alerts_config(config: dict[str, Any] | None, *, need_urls: bool = True) -> AlertsConfig:
    """The ``[alerts]`` delivery settings, checked: unknown keys, bad values, a missing environment variable
    (``need_urls``) each raise one :class:`ConfigError` line."""
    section = (config or {}).get("alerts") or {}
    if not isinstance(section, dict):
        raise ConfigError("[alerts] must be a table")
    unknown = sorted(set(section) - ALERT_KEYS)
    if unknown:
        raise ConfigError(f"[alerts]: unknown key {unknown[0]!r} (known: {', '.join(sorted(ALERT_KEYS))})")
    public_url = os.environ.get(PUBLIC_URL_ENV) or section.get("public_url") or ""
    if not isinstance(public_url, str) or (public_url and not public_url.startswith(("https://", "http://"))):
        raise ConfigError(f"the dashboard's public URL ({PUBLIC_URL_ENV} or [alerts] public_url) must start with "
                          "https:// or http://, e.g. https://provlens.example.org")
    renotify = _number("[alerts]", "renotify_hours", section.get("renotify_hours", DEFAULT_RENOTIFY_HOURS),
                       minimum=0.01)
    attempts = int(_number("[alerts]", "delivery_attempts",
                           section.get("delivery_attempts", DEFAULT_DELIVERY_ATTEMPTS), minimum=1))
    wait = _number("[alerts]", "retry_wait_seconds", section.get("retry_wait_seconds", DEFAULT_RETRY_WAIT_SECONDS),
                   minimum=0)
    raw_targets = section.get("targets", [])
    if not isinstance(raw_targets, list) or not all(isinstance(t, dict) for t in raw_targets):
        raise ConfigError("[[alerts.targets]] must be an array of tables")
    targets: list[Target] = []
    for i, raw in enumerate(raw_targets, 1):
        where = f"[[alerts.targets]] #{i}"
        unknown = sorted(set(raw) - TARGET_KEYS)
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(TARGET_KEYS))})")
        name, url_env = raw.get("name"), raw.get("url_env")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where}: name is required (text)")
        where = f"alert target {name!r}"
        if not isinstance(url_env, str) or not url_env.strip():
            raise ConfigError(f"{where}: url_env is required: the name of the environment variable that holds the "
                              "target's Apprise URL")
        if any(t.name == name for t in targets):
            raise ConfigError(f"{where}: two targets have this name")
        target = Target(name=name, url_env=url_env.strip(),
                        rules=_names(where, "rules", raw.get("rules", []), RULES),
                        severities=_names(where, "severities", raw.get("severities", []), SEVERITIES))
        if need_urls:
            target.url()  # raises a ConfigError naming the variable when it is not set
        targets.append(target)
    return AlertsConfig(public_url=public_url, renotify_hours=renotify, delivery_attempts=attempts,
                        retry_wait_seconds=wait, targets=tuple(targets))


def accepting(targets: tuple[Target, ...], alert: Alert) -> list[Target]:
    return [t for t in targets if t.accepts(alert.rule, alert.severity)]
