"""Tracks a synchronization job's status and renders snapshots in the shape of
GET /servicePrincipals/{id}/synchronization/jobs."""

from __future__ import annotations

import copy

from .clock import iso7
from .model import App

NEVER = "0001-01-01T00:00:00Z"
CREDENTIAL_ERROR = {
    "code": "SystemForCrossDomainIdentityManagementCredentialValidationFailure",
    "message": "We are unable to connect to the application: the secret token is invalid or has expired. "
               "Verify the Tenant URL and Secret Token and save the credentials again.",
    "tenantActionable": True,
}


class JobStatus:
    """The mutable job status; `snapshot` returns a deep copy in the Graph job shape."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.last: dict | None = None
        self.last_success: dict | None = None
        self.last_success_exports: dict | None = None
        self.successive_failures = 0
        self.steady_first = NEVER
        self.steady_last = NEVER
        self.synced = 0
        self.quarantine: dict | None = None

    def after_cycle(self, cycle_id: str, began: int, ended: int, counts: dict, state: str,
                    synced: int) -> None:
        execution = {
            "activityIdentifier": cycle_id, "countEntitled": counts["entitled"],
            "countExported": counts["exported"], "countEscrowed": counts["escrowed"],
            "countImported": counts["imported"],
            "error": dict(CREDENTIAL_ERROR) if state == "Failed" else None,
            "state": state, "timeBegan": iso7(began), "timeEnded": iso7(ended),
        }
        self.last = execution
        self.synced = synced
        if state == "Failed":
            self.successive_failures += 1
            return
        self.successive_failures = 0
        self.last_success = execution
        if counts["exported"]:
            self.last_success_exports = execution
        if state == "Succeeded":
            if self.steady_first == NEVER:
                self.steady_first = iso7(ended)
            self.steady_last = iso7(ended)

    def enter_quarantine(self, began: int) -> None:
        self.quarantine = {"currentBegan": iso7(began), "nextAttempt": None,
                           "reason": "EncounteredQuarantineException", "seriesBegan": iso7(began),
                           "seriesCount": 0, "error": dict(CREDENTIAL_ERROR)}

    def quarantine_next(self, next_attempt: int, count: int) -> None:
        self.quarantine["nextAttempt"] = iso7(next_attempt)
        self.quarantine["seriesCount"] = count

    def leave_quarantine(self) -> None:
        self.quarantine = None

    def snapshot(self, captured: int) -> dict:
        app = self.app
        job = {
            "id": app.job_id,
            "templateId": app.template_id,
            "schedule": {"expiration": None, "interval": "PT40M", "state": "Active"},
            "status": {
                "code": "Quarantine" if self.quarantine else "Active",
                "countSuccessiveCompleteFailures": self.successive_failures,
                "escrowsPruned": False,
                "lastExecution": self.last,
                "lastSuccessfulExecution": self.last_success,
                "lastSuccessfulExecutionWithExports": self.last_success_exports,
                "progress": [],
                "quarantine": self.quarantine,
                "steadyStateFirstAchievedTime": self.steady_first,
                "steadyStateLastAchievedTime": self.steady_last,
                "synchronizedEntryCountByType": [
                    {"key": "user to urn:ietf:params:scim:schemas:core:2.0:User", "value": self.synced}],
                "troubleshootingUrl": None,
            },
            "synchronizationJobSettings": [],
        }
        return {"capturedAt": iso7(captured), "servicePrincipalId": app.sp_id, "job": copy.deepcopy(job)}
