"""The directory audit log of the simulated tenant (issue 24): what Graph's ``/auditLogs/directoryAudits`` holds.

- The provisioning service's entries (``loggedByService`` "Account Provisioning", category
  ``ProvisioningManagement``, activity names from Microsoft's audit-activities reference):
  - a quarantine of the sandbox app some days *before* the period (so before any job snapshot): Quarantine
    entries at its start and at its 6 h and 12 h retries, then an admin saves new credentials and restarts the job
    (Microsoft: a restart takes the job out of quarantine). Only the audit log knows this episode.
  - a Quarantine entry when the production app's credential episode puts it in quarantine (the snapshots know
    that one too), and the admin's credential update when the token is renewed;
  - configuration changes in the period: a mapping/scope edit by a second admin, a settings change by an
    automation app.
- Other services' entries ("Core Directory"), which the pull's ``loggedByService`` filter leaves out.

The record shape is Graph's ``directoryAudit``; where Microsoft documents no shape (the quarantine entries, where
the job id sits) the simulator assumes one (``additionalDetails`` key ``JobId``), and provlens reads it defensively.
Times are whole microseconds, so stored values equal the truth exactly. The simulation does not model the restart
a mapping edit would trigger.
"""

from __future__ import annotations

import random

from .clock import DAY, HOUR, MINUTE, SECOND, floor_day, iso7
from .ids import IdFactory
from .model import App
from .story import Story

SERVICE = "Account Provisioning"
CATEGORY = "ProvisioningManagement"
QUARANTINE = "Quarantine"
CREDENTIALS = "Update provisioning setting or credentials"
RESTART = "Enable/restart provisioning configuration"
MAPPINGS = "Update attribute mappings or scope"
CONFIG_ACTIVITIES = (CREDENTIALS, RESTART, MAPPINGS)
PROVISIONING_APP = {"appId": None, "displayName": "Microsoft Entra provisioning service",
                    "servicePrincipalId": None, "servicePrincipalName": None}
QUARANTINE_REASON = ("EncounteredQuarantineException: the target application rejected the admin credentials "
                     "(HTTP 401); the job is in quarantine")


def _us(ticks: int) -> int:
    return ticks - ticks % 10


def _user(ids: IdFactory, name: str, upn: str) -> dict:
    return {"user": {"id": ids.guid(), "displayName": name, "userPrincipalName": upn, "ipAddress": "203.0.113.20",
                     "userType": None, "homeTenantId": None, "homeTenantName": None}, "app": None}


class _Log:
    def __init__(self, ids: IdFactory) -> None:
        self.ids, self.entries = ids, []

    def add(self, t: int, activity: str, app: App | None, initiated_by: dict, *, result: str = "success",
            reason: str = "", service: str = SERVICE, category: str = CATEGORY, modified: list | None = None,
            target: dict | None = None) -> dict:
        corr = self.ids.guid()
        targets = [target] if target else []
        details = []
        if app is not None:
            targets = [{"id": app.sp_id, "displayName": app.name, "type": "ServicePrincipal",
                        "userPrincipalName": None, "groupType": None, "modifiedProperties": modified or []}]
            details = [{"key": "JobId", "value": app.job_id}, {"key": "TemplateId", "value": app.template_id}]
        prefix = "Sync" if service == SERVICE else "Directory"
        entry = {"id": f"{prefix}_{corr}_{self.ids.hex(5).upper()}_{self.ids.rng.randrange(10**7, 10**8)}",
                 "category": category, "correlationId": corr, "result": result, "resultReason": reason,
                 "activityDisplayName": activity, "activityDateTime": iso7(_us(t)), "loggedByService": service,
                 "operationType": "Update", "initiatedBy": initiated_by, "targetResources": targets,
                 "additionalDetails": details}
        self.entries.append(entry)
        return entry


def build_audits(rng: random.Random, ids: IdFactory, story: Story, quarantine: list[dict], start: int,
                 end: int) -> tuple[list[dict], list[dict]]:
    """The audit entries (sorted by time, id) and the audit-only quarantine periods (truth)."""
    prod, sandbox = story.apps
    log = _Log(ids)
    admin = _user(ids, "Provisioning Admin", "provisioning.admin@contoso.com")
    second = _user(ids, "Identity Engineer", "identity.engineer@contoso.com")
    automation = {"user": None, "app": {"appId": ids.guid(), "displayName": "HR onboarding automation",
                                        "servicePrincipalId": ids.guid(),
                                        "servicePrincipalName": "HR onboarding automation"}}
    period = end - start

    # The sandbox's quarantine before the period: entered, retried at 6 h and 12 h, then fixed and restarted.
    began = _us(floor_day(start - 5 * DAY) + 3 * HOUR + rng.randrange(50 * MINUTE))
    for gap in (0, 6 * HOUR, 12 * HOUR):
        log.add(began + gap, QUARANTINE, sandbox, {"user": None, "app": dict(PROVISIONING_APP)}, result="failure",
                reason=QUARANTINE_REASON)
    fixed = _us(began + 20 * HOUR + rng.randrange(30 * MINUTE))
    log.add(fixed, CREDENTIALS, sandbox, admin, modified=[
        {"displayName": "SecretToken", "oldValue": "[redacted]", "newValue": "[redacted]"}])
    restarted = _us(fixed + 3 * MINUTE + rng.randrange(2 * MINUTE))
    log.add(restarted, RESTART, sandbox, admin)
    audit_only = [{"service_principal_id": sandbox.sp_id, "job_id": sandbox.job_id, "began": iso7(began),
                   "ended": iso7(restarted), "reason": QUARANTINE_REASON}]

    # The production app's credential episode (in the period): its quarantine and the renewal.
    for q in quarantine:
        app = prod if q["service_principal_id"] == prod.sp_id else sandbox
        log.add(_began_ticks(q["began"]), QUARANTINE, app, {"user": None, "app": dict(PROVISIONING_APP)},
                result="failure", reason=QUARANTINE_REASON)
    if prod.episode is not None and prod.episode.renewed_at < end:
        log.add(prod.episode.renewed_at - 2 * MINUTE, CREDENTIALS, prod, admin, modified=[
            {"displayName": "SecretToken", "oldValue": "[redacted]", "newValue": "[redacted]"}])

    # Configuration changes in the period.
    log.add(start + int(period * 0.45) + rng.randrange(HOUR), MAPPINGS, sandbox, second, modified=[
        {"displayName": "department", "oldValue": "\"extensionAttribute1\"", "newValue": "\"department\""}])
    log.add(start + int(period * 0.7) + rng.randrange(HOUR), CREDENTIALS, sandbox, automation, modified=[
        {"displayName": "NotificationEmail", "oldValue": "\"old-ops@contoso.com\"", "newValue": "\"ops@contoso.com\""}])

    # Other services' entries: not the provisioning service's.
    for i in range(12):
        t = start - 6 * DAY + rng.randrange(period + 6 * DAY)
        log.add(t, "Update user" if i % 2 else "Add member to group", None, second, service="Core Directory",
                category="UserManagement" if i % 2 else "GroupManagement",
                target={"id": ids.guid(), "displayName": None, "type": "User", "modifiedProperties": [],
                        "userPrincipalName": f"someone{i}@contoso.com", "groupType": None})

    entries = sorted(log.entries, key=lambda e: (e["activityDateTime"], e["id"]))
    return entries, audit_only


def _began_ticks(text: str) -> int:
    """Ticks of an iso7 text (the engine's quarantine start)."""
    from datetime import datetime

    from .clock import from_datetime

    head, frac = text.rstrip("Z").split(".")
    whole = from_datetime(datetime.fromisoformat(head + "+00:00"))
    return whole + int(frac.ljust(7, "0")[:7]) * (SECOND // 10_000_000)
