"""The alert rules (issue 24): :func:`evaluate` reads a store as of a time and returns the active alerts.

Read-only: it runs the questions of ``queries/alerts.py`` on an open connection and applies each rule's thresholds
(``ingest/alerts/settings.py``). Nothing dated after ``now`` counts, so an evaluation "as of" a past time sees what
the store held about that time. Each alert's (rule, key) is the same at every evaluation while its condition holds:

- ``quarantine``      ``<sp>/<job>``: the job's latest status snapshot says Quarantine (reason, since, next attempt);
                      it stops being active when a later snapshot says otherwise.
- ``quarantine_risk`` ``<sp>/<job>``: escrowed identities approach Microsoft's quarantine thresholds (below).
- ``quiet``           ``<sp>/<job>/stopped`` or ``<sp>/<job>/nothing_changed``: no cycle logged for more than N x the
                      job's interval while it is Active and not quarantined; the job status's last execution tells
                      "nothing changed" (recent and not failed) from "stopped".
- ``stale_data``      ``<source>``: provlens' own ingest from that source has not succeeded for longer than a set age.
- ``new_error``       ``<sp>/<job>/<error code>``: a code with no failure in the previous 14 days, active for a day.
- ``failure_spike``   ``<sp>/<job>``: see :func:`_failure_spike`.
- ``credential``      ``<sp>``: the newest credential evidence (Entra's credential codes, 401/403 in Entra's log or
                      answered to Entra's SCIM client) is newer than the newest sign that the credential works.
- ``violation``       ``<sp>/<job>/<kind>/<source object id>``: an open constraint violation.
- ``unlogged_writes`` ``<SCIM tenant>/<client>``: SCIM writes Entra never logged in the last day.
- ``preflight``       ``<sp>/<job>/<kind>``: the latest preflight run (issue 26) found problems of that kind that its
                      previous run did not (``only_new``), or any (``only_new = false``); a later run without them
                      ends it.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

from ingest.alerts.model import Alert
from ingest.alerts.settings import AlertSettings
from queries import alerts as sql
from queries.db import bind

UTC = timezone.utc


def _rows(con, text: str, params: dict) -> list[dict[str, Any]]:
    cur = con.execute(text, bind(text, params))
    names = [d[0] for d in cur.description]
    out = []
    for row in cur.fetchall():
        out.append({n: (v.astimezone(UTC) if isinstance(v, datetime) else v) for n, v in zip(names, row)})
    return out


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _ago(now: datetime, t: datetime) -> str:
    minutes = int((now - t).total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // 1440} days"


def url(page: str, *, since: datetime | None = None, until: datetime | None = None, sp: str | None = None,
        job: str | None = None, **extra: str) -> str:
    """A dashboard view, relative, with the filters the pages read from the URL: ``range=custom&from&to`` (UTC days,
    inclusive), ``sp`` (an app), ``job``, and a page's own parameter (the identity page's ``q``)."""
    params: list[tuple[str, str]] = []
    if since is not None:
        end = until or since
        params += [("range", "custom"), ("from", since.astimezone(UTC).date().isoformat()),
                   ("to", max(end, since).astimezone(UTC).date().isoformat())]
    if sp:
        params.append(("sp", sp))
    if job:
        params.append(("job", job))
    params += [(k, v) for k, v in extra.items() if v]
    return f"/{page}" + (f"?{urlencode(params)}" if params else "")


_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def parse_interval(text: str | None) -> timedelta | None:
    """An ISO 8601 duration as Graph writes a job's schedule interval (``PT40M``); None when absent or unreadable."""
    m = _DURATION.match((text or "").strip().upper())
    if not m or not any(m.groups()):
        return None
    d, h, mi, s = m.groups()
    value = timedelta(days=int(d or 0), hours=int(h or 0), minutes=int(mi or 0), seconds=float(s or 0))
    return value if value > timedelta(0) else None


def _n(count: int, word: str, plural: str | None = None) -> str:
    return f"{count:,} {word if count == 1 else plural or word + 's'}"


def _app(row: dict) -> str | None:
    return row.get("app_name") or row.get("service_principal_id")


# ----------------------------------------------------------------------------------------------------- the rules
def _quarantine(con, settings: AlertSettings, now: datetime, jobs: list[dict]) -> list[Alert]:
    out = []
    for j in jobs:
        if j["status_code"] != "Quarantine":
            continue
        since = j["quarantine_series_began"] or j["quarantine_since"] or j["captured_at"]
        nxt = j["quarantine_next_attempt"]
        reason = j["quarantine_reason"] or "no reason given"
        out.append(Alert(
            rule="quarantine", severity=settings.severity("quarantine"),
            key=f"{j['service_principal_id']}/{j['job_id']}", app=_app(j), job=j["job_id"],
            first_seen=since, last_seen=j["captured_at"],
            message=(f"{_app(j)}: provisioning job in quarantine since {_iso(since)} ({reason}); "
                     + (f"next attempt {_iso(nxt)}" if nxt else "no next attempt announced")),
            action=("Fix the cause Entra reports (a credential: renew the SCIM token in Provisioning > Admin "
                    "credentials and Test Connection; escrow thresholds: fix the failing identities), then restart "
                    "provisioning to leave quarantine at once."),
            identities=j["count_escrowed"],
            url=url("cycles", since=since, until=now, sp=j["service_principal_id"], job=j["job_id"])))
    return out


# Microsoft's quarantine thresholds ("Application provisioning in quarantine status",
# https://learn.microsoft.com/en-us/entra/identity/app-provisioning/application-provisioning-quarantine-status):
# the escrow is evaluated from 5,000 failures; a job is quarantined above 40% failed or 40,000 failures, and an
# absolute cap of 60,000 failures counts reference failures too (which the logs do not show). Defaults in
# ingest/alerts/settings.py; which total the 40% is taken of is not documented, so both readings are computed
# (escrowed / entitled and escrowed / (escrowed + exported)) and the larger share counts.
def _quarantine_risk(con, settings: AlertSettings, now: datetime, jobs: list[dict]) -> list[Alert]:
    rule = settings.rule("quarantine_risk")
    runs = {(r["service_principal_id"], r["job_id"]): r for r in _rows(
        con, sql.OPEN_FAILURE_RUNS, {"until": now, "since": None, "sps": None, "job": None, "types": None})}
    warn = rule["warn_at"]
    names = {r["service_principal_id"]: r["app_name"] for r in _rows(con, f"SELECT * FROM {sql.APP_NAMES}", {})}
    known = {(j["service_principal_id"], j["job_id"]) for j in jobs}
    # Jobs with failures but no status snapshot (a store loaded from files): the counts alone, as of now.
    unseen = [{"service_principal_id": sp, "job_id": job, "app_name": names.get(sp), "status_code": None,
               "count_escrowed": None, "count_entitled": None, "count_exported": None, "captured_at": now}
              for sp, job in sorted(runs, key=str) if (sp, job) not in known]
    out = []
    for j in [*jobs, *unseen]:
        if j["status_code"] == "Quarantine":
            continue
        key = (j["service_principal_id"], j["job_id"])
        run = runs.get(key) or {"escrowed": 0, "failing_since": None, "last_failure": None}
        escrowed = max(j["count_escrowed"] or 0, run["escrowed"])
        shares = [escrowed / j["count_entitled"] if j["count_entitled"] else 0.0,
                  escrowed / (escrowed + j["count_exported"]) if escrowed and j["count_exported"] is not None
                  else 0.0]
        share = max(shares)
        reasons = []
        if escrowed >= warn * rule["evaluation_from"] and share >= warn * rule["failed_share"]:
            reasons.append(f"{share:.0%} failed (quarantine above {rule['failed_share']:.0%} once "
                           f"{rule['evaluation_from']:,} fail)")
        if escrowed >= warn * rule["total_failures"]:
            reasons.append(f"quarantine above {rule['total_failures']:,} failures")
        elif escrowed >= warn * rule["absolute_failures"]:
            reasons.append(f"absolute cap {rule['absolute_failures']:,}")
        if not reasons:
            continue
        out.append(Alert(
            rule="quarantine_risk", severity=settings.severity("quarantine_risk"), key=f"{key[0]}/{key[1]}",
            app=_app(j), job=j["job_id"], first_seen=run["failing_since"] or j["captured_at"],
            last_seen=max(run["last_failure"] or j["captured_at"], j["captured_at"]),
            message=f"{_app(j)}: {escrowed:,} identities failing, near Entra's quarantine threshold "
                    f"({'; '.join(reasons)})",
            action=("Fix the commonest failures now (Failures page, top errors): Entra quarantines the job when "
                    "its escrow passes Microsoft's thresholds."),
            identities=escrowed,
            url=url("failures", since=now - timedelta(days=7), until=now, sp=key[0], job=key[1])))
    return out


def _quiet(con, settings: AlertSettings, now: datetime, jobs: list[dict]) -> list[Alert]:
    rule = settings.rule("quiet")
    logged = {r["job_id"]: r["last_logged"] for r in _rows(con, sql.LAST_LOGGED_CYCLE, {"now": now})}
    out = []
    for j in jobs:
        if j["status_code"] != "Active" or (j["schedule_state"] not in (None, "Active")):
            continue
        last = logged.get(j["job_id"])
        if last is None:
            continue
        interval = parse_interval(j["schedule_interval"]) or timedelta(minutes=rule["default_interval_minutes"])
        limit = rule["intervals"] * interval
        if now - last <= limit:
            continue
        ended = j["last_execution_ended"]
        recent = ended is not None and now - ended <= limit and (j["last_execution_state"] or "") != "Failed"
        kind = "nothing_changed" if recent else "stopped"
        app = _app(j)
        if recent:
            message = (f"{app}: no provisioning event logged for {_ago(now, last)} (since {_iso(last)}), but the "
                       f"job ran at {_iso(ended)} ({j['last_execution_state']}): nothing changed")
            action = "Nothing to do if no one joined, moved or left; check the scope if changes were expected."
            severity = settings.rule("quiet").severity or "info"
        else:
            ran = f"its last run ended {_iso(ended)} ({j['last_execution_state']})" if ended else "it never ran"
            message = (f"{app}: no provisioning cycle for {_ago(now, last)} (since {_iso(last)}) while the job is "
                       f"Active; {ran}: the job has stopped")
            action = ("Open the app's Provisioning page: check the job's status and errors, then restart "
                      "provisioning; if it stays idle, open a support case with Microsoft.")
            severity = settings.severity("quiet")
        out.append(Alert(
            rule="quiet", severity=severity, key=f"{j['service_principal_id']}/{j['job_id']}/{kind}", app=app,
            job=j["job_id"], first_seen=last, last_seen=max(j["captured_at"], ended or j["captured_at"]),
            message=message, action=action, identities=None,
            url=url("cycles", since=last - timedelta(days=1), until=now, sp=j["service_principal_id"],
                    job=j["job_id"])))
    return out


def _stale_data(con, settings: AlertSettings, now: datetime) -> list[Alert]:
    rule = settings.rule("stale_data")
    max_age = timedelta(hours=rule["max_age_hours"])
    out = []
    for r in _rows(con, sql.INGEST_FRESHNESS, {"now": now}):
        if r["source"] not in rule["sources"]:
            continue
        since = r["last_success"] or r["first_started"]
        if now - since <= max_age:
            continue
        what = (f"the last successful run ended {_iso(r['last_success'])}" if r["last_success"]
                else "no run has succeeded")
        last = f"; the latest run: {r['last_outcome']}" + (f" ({r['last_message'].splitlines()[0][:200]})"
                                                          if r["last_message"] else "")
        out.append(Alert(
            rule="stale_data", severity=settings.severity("stale_data"), key=r["source"], app=None, job=None,
            first_seen=since, last_seen=now,
            message=f"provlens' {r['source']} ingest is {_ago(now, since)} behind: {what}{last}",
            action=(f"Check the scheduled `python -m ingest` job for {r['source']} (its exit code and log): "
                    "credentials, network, the database lock."),
            identities=None, url="/"))
    return out


def _new_error(con, settings: AlertSettings, now: datetime) -> list[Alert]:
    rule = settings.rule("new_error")
    out = []
    for r in _rows(con, sql.NEW_ERROR, {"now": now, "lookback_days": rule["lookback_days"]}):
        if now - r["began"] >= timedelta(hours=rule["active_hours"]):
            continue
        if r["data_begins"] is None or r["began"] - r["data_begins"] < timedelta(hours=rule["min_history_hours"]):
            continue
        out.append(Alert(
            rule="new_error", severity=settings.severity("new_error"),
            key=f"{r['service_principal_id']}/{r['job_id']}/{r['error_code']}", app=_app(r), job=r["job_id"],
            first_seen=r["began"], last_seen=r["last"],
            message=(f"{_app(r)}: new error {r['error_code']} since {_iso(r['began'])} "
                     f"({_n(r['failures'], 'failure')}, not seen in the {rule['lookback_days']} days before)"),
            action="Read the error's SCIM detail and advice on the Failures page; a new code often follows a change "
                   "in the app or the attribute mappings.",
            identities=r["identities"],
            url=url("failures", since=r["began"], until=now, sp=r["service_principal_id"], job=r["job_id"])))
    return out


def _failure_spike(con, settings: AlertSettings, now: datetime) -> list[Alert]:
    """How it is computed: per job, the last ``cycles`` (3) logged cycles with writes (successes or failures) that
    ended by ``now`` are "recent"; their rate is failures / (successes + failures) over them together. The baseline is
    the same rate over the job's older cycles with writes that ended within ``baseline_days`` (7) before the first
    recent cycle began (at least ``cycles`` of them; fewer: no baseline, no alert). A spike: at least
    ``min_failures`` (5) recent failures, a recent rate of at least ``min_rate`` (20%) and at least ``factor`` (3) x
    the baseline rate. It ends when the last cycles' rate falls back."""
    rule = settings.rule("failure_spike")
    out = []
    for r in _rows(con, sql.FAILURE_SPIKE, {"now": now, "cycles": rule["cycles"],
                                              "baseline_days": rule["baseline_days"]}):
        total = r["success"] + r["failure"]
        base_total = r["baseline_success"] + r["baseline_failure"]
        if r["baseline_cycles"] < rule["cycles"] or not total or not base_total:
            continue
        rate, base = r["failure"] / total, r["baseline_failure"] / base_total
        if r["failure"] < rule["min_failures"] or rate < rule["min_rate"] or rate < rule["factor"] * base:
            continue
        out.append(Alert(
            rule="failure_spike", severity=settings.severity("failure_spike"),
            key=f"{r['service_principal_id']}/{r['job_id']}", app=_app(r), job=r["job_id"],
            first_seen=r["first_started"], last_seen=r["last_ended"],
            message=(f"{_app(r)}: {rate:.0%} of writes failed in the last {r['cycles']} cycles ({r['failure']} of "
                     f"{total}), against {base:.1%} in the {r['baseline_cycles']} cycles before"),
            action="Open the Failures page for these cycles: the top error code says what changed.",
            identities=None,
            url=url("failures", since=r["first_started"], until=now, sp=r["service_principal_id"],
                    job=r["job_id"])))
    return out


def _credential(con, settings: AlertSettings, now: datetime) -> list[Alert]:
    out = []
    for r in _rows(con, sql.CREDENTIAL_EVIDENCE, {"now": now}):
        where = "the SCIM server refused Entra's token" if r["scim_seen"] else "Entra's credential check failed"
        out.append(Alert(
            rule="credential", severity=settings.severity("credential"), key=r["service_principal_id"],
            app=_app(r), job=r["job_id"], first_seen=r["began"], last_seen=r["last_bad"],
            message=(f"{_app(r)}: {where} since {_iso(r['began'])} (latest: {r['latest_code']} at "
                     f"{_iso(r['last_bad'])}); nothing has succeeded since"),
            action=("Renew the SCIM token: enterprise app > Provisioning > Admin credentials, paste a new secret "
                    "token, Test Connection."),
            identities=r["identities"] or None,
            url=url("failures", since=r["began"], until=now, sp=r["service_principal_id"], job=r["job_id"])))
    return out


_KIND_TEXT = {"duplicate_user_name": "duplicate userName", "duplicate_group_name": "duplicate group name",
              "non_work_email": "non-work email address", "other_rejected_value": "rejected value"}
_KIND_ACTION = {
    "duplicate_user_name": "Another account in the app already has this userName: rename or remove it, or change the "
                           "source UPN or the mapping; Entra retries in a later cycle.",
    "duplicate_group_name": "Another group in the app has this name: rename or remove it, or change the mapping.",
    "non_work_email": "Give the user a work email in an allowed domain (mail attribute or the mapping).",
    "other_rejected_value": "Check the value named in the SCIM detail and the attribute mappings.",
}


def _violation(con, settings: AlertSettings, now: datetime) -> list[Alert]:
    """One alert per app, job and kind while any identity's violation of that kind is open (its last failure of the
    kind has no success after it): the identities are counted, not alerted one by one (a big tenant holds thousands
    at once). It fires when the first one opens and resolves when the last one is fixed."""
    kinds = list(settings.rule("violation")["kinds"])
    groups: dict[tuple, list[dict]] = {}
    for r in _rows(con, sql.OPEN_VIOLATIONS, {"now": now, "kinds": kinds}):
        groups.setdefault((r["service_principal_id"], r["job_id"], r["kind"]), []).append(r)
    out = []
    for (sp, job, kind), rows in groups.items():
        first = min(r["first_seen"] for r in rows)
        identities = len({r["source_id"] for r in rows})
        failures = sum(r["occurrences"] for r in rows)
        app = _app(rows[0])
        out.append(Alert(
            rule="violation", severity=settings.severity("violation"), key=f"{sp}/{job}/{kind}", app=app, job=job,
            first_seen=first, last_seen=max(r["last_seen"] for r in rows),
            message=(f"{app}: {_n(identities, 'identity', 'identities')} not provisioned, refused for "
                     f"{_KIND_TEXT.get(kind, kind)} ({_n(failures, 'failure')}, the first since {_iso(first)})"),
            action=_KIND_ACTION.get(kind, "See the Constraint violations page."), identities=identities,
            url=url("violations", since=first, until=now, sp=sp, job=job)))
    return out


def _unlogged_writes(con, settings: AlertSettings, now: datetime) -> list[Alert]:
    rule = settings.rule("unlogged_writes")
    since = now - timedelta(hours=rule["window_hours"])
    out = []
    for r in _rows(con, sql.UNLOGGED_WRITES, {"now": now, "since": since}):
        if r["writes"] < max(1, rule["min_writes"]):
            continue
        out.append(Alert(
            rule="unlogged_writes", severity=settings.severity("unlogged_writes"),
            key=f"{r['tenant'] or '-'}/{r['client'] or '-'}", app=_app(r), job=None, first_seen=r["first_ts"],
            last_seen=r["last_ts"],
            message=(f"{_n(r['writes'], 'SCIM write')} that Entra never logged since {_iso(r['first_ts'])} "
                     f"(SCIM tenant {r['tenant'] or 'unknown'}, client "
                     f"{r['user_agent'] or r['client'] or 'unknown'}): another client is writing to the app"),
            action=("Find out who owns this client (its credential and user agent on the SCIM audit page); "
                    "its changes can undo Entra's or be undone by it."),
            identities=r["identities"], url=url("scim", since=r["first_ts"], until=now)))
    return out


def _preflight(con, settings: AlertSettings, now: datetime) -> list[Alert]:
    from ingest.preflight.findings import KINDS

    rule = settings.rule("preflight")
    out = []
    for r in _rows(con, sql.PREFLIGHT_FINDINGS, {"now": now, "kinds": list(rule["kinds"])}):
        count = r["new_findings"] if rule["only_new"] else r["findings"]
        if count < max(1, rule["min_findings"]):
            continue
        label, _, fix = KINDS.get(r["kind"], (r["kind"], "", "See the Preflight page."))
        new = f"{r['new_findings']:,} new since the previous run" if r["previous_started_at"] else "a first run"
        out.append(Alert(
            rule="preflight", severity=settings.severity("preflight"),
            key=f"{r['service_principal_id']}/{r['job_id']}/{r['kind']}", app=_app(r), job=r["job_id"],
            first_seen=r["started_at"], last_seen=r["started_at"],
            message=(f"{_app(r)}: preflight run {r['run_id']} ({_iso(r['started_at'])}) predicts "
                     f"{_n(r['findings'], 'problem')} of kind {label.lower()} ({new}) before Entra's next cycle"),
            action=fix, identities=count, url=url("preflight", sp=r["service_principal_id"])))
    return out


def evaluate(con, settings: AlertSettings, now: datetime) -> list[Alert]:
    """Every active alert of the enabled rules as of ``now`` (UTC), sorted by rule (as ``RULES`` lists them), key."""
    now = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
    jobs = _rows(con, sql.JOBS_NOW, {"now": now})
    found: list[Alert] = []
    for name, check in (("quarantine", lambda: _quarantine(con, settings, now, jobs)),
                        ("quarantine_risk", lambda: _quarantine_risk(con, settings, now, jobs)),
                        ("quiet", lambda: _quiet(con, settings, now, jobs)),
                        ("stale_data", lambda: _stale_data(con, settings, now)),
                        ("new_error", lambda: _new_error(con, settings, now)),
                        ("failure_spike", lambda: _failure_spike(con, settings, now)),
                        ("credential", lambda: _credential(con, settings, now)),
                        ("violation", lambda: _violation(con, settings, now)),
                        ("unlogged_writes", lambda: _unlogged_writes(con, settings, now)),
                        ("preflight", lambda: _preflight(con, settings, now))):
        if settings.enabled(name):
            found += check()
    from ingest.alerts.model import RULES

    return sorted(found, key=lambda a: (RULES.index(a.rule), a.key))
