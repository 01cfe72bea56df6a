"""``python -m ingest graph``: its arguments, how they combine with the environment and provlens.toml,
and the handler. Precedence: flags > environment (``PROVLENS_*``, ``AZURE_*``) > toml > defaults.
The toml values come from ``[graph]`` (or, for ``ingest run``, one ``[[sources]]`` table).
"""

from __future__ import annotations

import argparse
import os
from datetime import datetime, timedelta, timezone
from typing import Any

from ingest import exitcodes, timespec
from ingest.config import ConfigError, load_toml
from ingest.graph.auth import AUTH_METHODS, CLOUDS, AuthConfigError, AuthSettings, check_base_url
from ingest.graph.log import RunLog
from ingest.graph.pacing import RateError, RetryPolicy, parse_rate


def parse_duration(text: str) -> timedelta:
    try:
        return timespec.parse_duration(text)
    except timespec.TimeSpecError as exc:
        raise ConfigError(str(exc)) from None


def parse_when(text: str, now: datetime | None = None) -> datetime:
    """A point in time in provlens's one grammar (:mod:`ingest.timespec`)."""
    try:
        return timespec.parse_when(text, now)
    except timespec.TimeSpecError as exc:
        raise ConfigError(str(exc)) from None


def add_graph_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Microsoft Graph")
    g.add_argument("--tenant-id", help="Entra tenant id (env PROVLENS_TENANT_ID, AZURE_TENANT_ID)")
    g.add_argument("--client-id", help="app registration (client) id (env PROVLENS_CLIENT_ID, AZURE_CLIENT_ID)")
    g.add_argument("--service-principal-id", action="append", dest="service_principal_ids", metavar="ID",
                   help="enterprise app (service principal object id) to pull; repeatable "
                        "(env PROVLENS_SERVICE_PRINCIPAL_IDS, comma-separated). Default: all apps")
    g.add_argument("--since", help="start: RFC 3339 time, a date, or a duration ago like 2w/30d/12h (default: the "
                                   "watermark minus --overlap; first run: 30d)")
    g.add_argument("--until", help="end: RFC 3339 time, a date, or a duration ago (default: now)")
    g.add_argument("--overlap", help="re-read this much before the watermark (late records; default 2h)")
    g.add_argument("--slice", dest="slice_length", help="commit unit: time slice length (default 1d)")
    g.add_argument("--commit-every", dest="commit_seconds", type=float,
                   help="commit complete slices at least every this many seconds (default 5; 0: every slice); "
                        "quick slices are committed together, and every 50,000 events in any case")
    g.add_argument("--auth", choices=AUTH_METHODS,
                   help="auto (default): PROVLENS_GRAPH_TOKEN, else a client secret from PROVLENS_CLIENT_SECRET/"
                        "AZURE_CLIENT_SECRET, else --certificate, else DefaultAzureCredential")
    g.add_argument("--certificate", help="client certificate (PEM/PFX) path; password from "
                                         "PROVLENS_CERTIFICATE_PASSWORD (env PROVLENS_CLIENT_CERTIFICATE)")
    g.add_argument("--cloud", choices=sorted(CLOUDS), help="national cloud: Graph host, authority and scope "
                                                          "(default public)")
    g.add_argument("--graph-url", help="Graph base URL override, e.g. a proxy or http://127.0.0.1:PORT/v1.0")
    g.add_argument("--rate", help="request budget, e.g. 5/10s (Graph's limit for this API; default), or off")
    g.add_argument("--top", type=int, help="page size to ask for (default 999; falls back to 500)")
    g.add_argument("--max-wait", type=float, help="give up after this many seconds of retry waits (default 900)")
    g.add_argument("--timeout", type=float, help="seconds per HTTP request (default 60)")
    g.add_argument("--no-jobs", action="store_true", default=None, help="do not read synchronization job status")
    g.add_argument("--audit-logs", action=argparse.BooleanOptionalAction, default=None,
                   help="also pull the provisioning service's directory audit log (/auditLogs/directoryAudits, "
                        "loggedByService 'Account Provisioning': quarantine history, configuration changes); "
                        "default on, --no-audit-logs skips it (toml audit_logs = false)")
    p.add_argument("--log-format", choices=("text", "json"), default=None,
                   help="text (default) or one JSON line per event on stderr")


def _pick(args: argparse.Namespace | None, name: str, env: tuple[str, ...], section: dict, key: str | None = None,
          default: Any = None) -> Any:
    value = getattr(args, name, None) if args is not None else None
    if value is not None:
        return value
    for var in env:
        if os.environ.get(var):
            return os.environ[var]
    value = section.get(key or name)
    return default if value is None else value


def _flag(value: Any) -> bool:
    """A boolean from a flag, the toml or the environment ("0", "false", "no", "off" are false)."""
    if isinstance(value, str):
        return value.strip().lower() not in ("0", "false", "no", "off", "")
    return bool(value)


def settings_from(args: argparse.Namespace | None, section: dict, db: str):
    """Combine flags, environment and a toml table into ``PullSettings`` (raises ConfigError)."""
    from ingest.graph.pull import PullSettings  # msgraph is imported only when Graph is used

    cloud_name = _pick(args, "cloud", ("PROVLENS_CLOUD",), section, default="public")
    if cloud_name not in CLOUDS:
        raise ConfigError(f"cloud {cloud_name!r}: one of {', '.join(sorted(CLOUDS))}")
    cloud = CLOUDS[cloud_name]
    auth = AuthSettings(
        method=_pick(args, "auth", ("PROVLENS_AUTH",), section, default="auto"),
        tenant_id=_pick(args, "tenant_id", ("PROVLENS_TENANT_ID", "AZURE_TENANT_ID"), section),
        client_id=_pick(args, "client_id", ("PROVLENS_CLIENT_ID", "AZURE_CLIENT_ID"), section),
        certificate_path=_pick(args, "certificate", ("PROVLENS_CLIENT_CERTIFICATE",
                                                     "AZURE_CLIENT_CERTIFICATE_PATH"), section, "certificate"),
        cloud=cloud)
    if auth.method not in AUTH_METHODS:
        raise ConfigError(f"auth {auth.method!r}: one of {', '.join(AUTH_METHODS)}")
    for key in ("client_secret", "secret", "token"):
        if key in section:
            raise ConfigError(f"provlens.toml must not hold secrets ({key!r}); use PROVLENS_CLIENT_SECRET / "
                              "PROVLENS_GRAPH_TOKEN in the environment or a credential chain")
    sps = _pick(args, "service_principal_ids", ("PROVLENS_SERVICE_PRINCIPAL_IDS",), section, default=[])
    if isinstance(sps, str):
        sps = [s.strip() for s in sps.split(",") if s.strip()]
    try:
        base_url = check_base_url(_pick(args, "graph_url", ("PROVLENS_GRAPH_URL",), section, default=cloud.base_url))
        rate = parse_rate(str(_pick(args, "rate", ("PROVLENS_GRAPH_RATE",), section, default="5/10s")))
    except (AuthConfigError, RateError) as exc:
        raise ConfigError(str(exc)) from None
    now = datetime.now(timezone.utc)
    since = _pick(args, "since", (), section)
    until = _pick(args, "until", (), section)
    settings = PullSettings(
        db=db, base_url=base_url, auth=auth, service_principal_ids=list(dict.fromkeys(sps)),
        since=parse_when(since, now) if since else None, until=parse_when(until, now) if until else None,
        overlap=parse_duration(_pick(args, "overlap", (), section, default="2h")),
        slice_length=parse_duration(_pick(args, "slice_length", (), section, "slice", default="1d")),
        rate=rate, top=int(_pick(args, "top", (), section, default=999)),
        policy=RetryPolicy(max_wait=float(_pick(args, "max_wait", ("PROVLENS_GRAPH_MAX_WAIT",), section,
                                                default=900))),
        timeout=float(_pick(args, "timeout", (), section, default=60)),
        commit_seconds=float(_pick(args, "commit_seconds", (), section, "commit_every", default=5)),
        jobs=not _pick(args, "no_jobs", (), section, default=False) and section.get("jobs", True) is not False,
        audit_logs=_flag(_pick(args, "audit_logs", ("PROVLENS_GRAPH_AUDIT_LOGS",), section, default=True)),
        quiet=bool(getattr(args, "quiet", False)))
    if settings.slice_length < timedelta(minutes=1):
        raise ConfigError("--slice must be at least 1m")
    if settings.commit_seconds < 0:
        raise ConfigError("--commit-every must be 0 or more seconds")
    if not 1 <= settings.top <= 999:
        raise ConfigError("--top must be between 1 and 999")
    if settings.since and settings.until and settings.since >= settings.until:
        raise ConfigError("--since must be before --until")
    return settings


def run_graph(settings, log: RunLog) -> int:
    """Pull and return the exit code; errors are already logged as clear lines."""
    from ingest.graph.pull import pull_graph

    try:
        outcome = pull_graph(settings, log)
    except AuthConfigError as exc:
        log.error("auth_config", str(exc))
        return exitcodes.AUTH
    for scope in outcome.scopes:
        if scope.exit_code == exitcodes.AUTH and scope is outcome.scopes[-1] and \
                len(outcome.scopes) < len(settings.service_principal_ids):
            log.warning("skipped_scopes", "remaining service principals were not pulled (authentication failed)")
    return outcome.exit_code


def cmd_graph(args: argparse.Namespace) -> int:
    section = load_toml(args.config).get("graph", {})
    settings = settings_from(args, section, args.db)
    return run_graph(settings, RunLog(args.log_format or "text"))
