"""Build the classification samples' Graph-shaped files from the real ones in this folder (run it from anywhere:
``python tests/data/real/classification/derive.py``; the tests run it too, into a temporary folder).

- ``elastic-provisioninglogs-graph.ndjson``: the three real Azure Monitor diagnostic-settings records of
  ``elastic-provisioninglogs-raw.log`` as Graph returns them: the envelope's ``properties``, with the PascalCase
  keys Azure Monitor writes (``Id``, ``Name``, ``Type``, ``Status``) renamed to Graph's and the numeric enums named
  after Microsoft's schema (microsoftgraph/microsoft-graph-docs-contrib, api-reference/v1.0/resources/
  provisioningstep.md: provisioningStepType import, scoping, matching, processing, referenceResolution, export;
  provisioningResult success, failure, skipped, warning). This is a test-data conversion only; reading the
  diagnostic-settings shape itself is the files source's job.
- ``derived-skips.ndjson``: one skipped event per skip reason the real samples do not hold, made from the real
  AttributeValidationFailed record by changing only the skip's signals, each as Microsoft documents it (the source
  is named beside each one below). Derived, not real.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
STEP_TYPES = ["import", "scoping", "matching", "processing", "referenceResolution", "export", "unknownFutureValue"]
RESULTS = ["success", "failure", "skipped", "warning", "unknownFutureValue"]
RENAMED = {"Id": "id", "Name": "displayName", "Type": "initiatorType", "Status": "status"}


def _graph_keys(obj: object, *, in_details: bool = False) -> object:
    if isinstance(obj, list):
        return [_graph_keys(v) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if in_details:  # open maps keep their keys
        return dict(obj)
    return {RENAMED.get(k, k): _graph_keys(v, in_details=k == "details") for k, v in obj.items()}


def graph_form(record: dict) -> dict:
    """A diagnostic-settings record's event as Graph's provisioningObjectSummary."""
    event = _graph_keys(record["properties"])
    for step in event.get("provisioningSteps") or []:
        if isinstance(step.get("provisioningStepType"), int):
            step["provisioningStepType"] = STEP_TYPES[step["provisioningStepType"]]
        if isinstance(step.get("status"), int):
            step["status"] = RESULTS[step["status"]]
    status = (event.get("statusInfo") or {}).get("status")
    if isinstance(status, int):
        event["statusInfo"]["status"] = RESULTS[status]
    return event


def _scoping(event: dict) -> dict:
    return next(s for s in event["provisioningSteps"] if s["name"] == "EntrySynchronizationScoping")


def derived_skips(template: dict) -> list[dict]:
    """Skipped events, one per documented reason, from the real skipped ``template`` (Graph form)."""
    base = copy.deepcopy(template)
    base["provisioningSteps"] = [s for s in base["provisioningSteps"] if s["name"] != "EntrySynchronizationSkip"]

    def make(name: str, *, checks: dict | None = None, error: dict | None = None, skip_step: dict | None = None):
        event = copy.deepcopy(base)
        event["id"] = f"derived-{name}"
        event["changeId"] = f"derived-change-{name}"
        _scoping(event)["details"].update(checks or {})
        if checks and any(v == "False" for v in checks.values()):
            _scoping(event)["status"] = "skipped"
        if skip_step is not None:
            event["provisioningSteps"].append({"name": "EntrySynchronizationSkip", "provisioningStepType": "processing",
                                               "status": "skipped", **skip_step})
        event["provisioningStatusInfo"] = {"status": "skipped", "errorInformation": error}
        return event

    def error(code: str, reason: str) -> dict:
        return {"errorCode": code, "errorCategory": "nonServiceFailure", "reason": reason, "additionalDetails": None,
                "recommendedAction": None}

    upn = "ellie@mauriziobrancaoutlook.onmicrosoft.com"
    return [
        # The scoping step's "User has the required role: False" (only the Default Access role):
        # /work/shared/reference/entra-provisioning-logs.md section 3; MicrosoftDocs/entra-docs
        # application-provisioning-config-problem-no-users-provisioned.md ("default access" role, "not effectively
        # entitled").
        make("default-access", checks={"User has the required role": "False", "SkipReason": "NotEffectivelyEntitled"}),
        # Provision on demand's table: SkipReason NotEffectivelyEntitled, IsActive True, Assigned to the application
        # False, IsInProvisioningScope True (MicrosoftDocs/entra-docs provision-on-demand.md).
        make("not-assigned", checks={"SkipReason": "NotEffectivelyEntitled", "IsActive": "True",
                                     "Assigned to the application": "False", "IsInProvisioningScope": "True"}),
        # The same with IsActive False: a disabled source user (entra-docs SAP tutorials: "NotEffectivelyEntitled ...
        # the user account status was Disabled").
        make("inactive", checks={"SkipReason": "NotEffectivelyEntitled", "IsActive": "False",
                                 "Assigned to the application": "True", "IsInProvisioningScope": "True"}),
        # A scoping filter that excluded the user ("Scoping filter evaluation passed": the scoping step's key).
        make("scoping-filter", checks={"Scoping filter evaluation passed": "False"}),
        # NotEffectivelyEntitled with every check passed: "a problem with the user assignment record" (no-users-
        # provisioned.md).
        make("not-entitled", checks={"SkipReason": "NotEffectivelyEntitled", "IsActive": "True",
                                     "Assigned to the application": "True", "IsInProvisioningScope": "True"}),
        # RedundantExport: the target already holds the values (entra-provisioning-logs.md section 3).
        make("redundant-export", error=error("RedundantExport", f"The User '{upn}' was not exported: the target "
                                             "already has the values."),
             skip_step={"description": f"User '{upn}' will be skipped: the User in Dropbox already has the values "
                                       "from Azure Active Directory", "details": {"SkipReason": "RedundantExport"}}),
        # Error-code table (entra-docs howto-analyze-provisioning-logs.md): DuplicateTargetEntries, ImportSkipped.
        make("duplicate-target", error=error("DuplicateTargetEntries", "The operation couldn't be completed because "
                                             "more than one user in the target application was found with the "
                                             "configured matching attributes.")),
        make("import-skipped", error=error("ImportSkipped", "The user who's being imported is missing the matching "
                                           "property defined in your attribute mappings.")),
        # EntrySynchronizationSkipped alone: "out of scope or already existed ... with no further changes" (same
        # table) - it says neither which; with a skip step that says nothing more, the skip is "other".
        make("entry-sync-skipped", error=error("EntrySynchronizationSkipped", "No further action was taken on the "
                                               "user and they were skipped."),
             skip_step={"description": f"User '{upn}' will be skipped", "details": {}}),
        # A reason Microsoft may add tomorrow: shown as itself.
        make("unknown-reason", skip_step={"description": f"User '{upn}' will be skipped because of a new rule",
                                          "details": {"SkipReason": "SomeFutureSkipReason"}}),
    ]


def main(out: Path = HERE) -> list[Path]:
    sample = HERE.parent / "elastic-provisioninglogs-raw.log"
    raw = [json.loads(line) for line in sample.read_text().splitlines() if line]
    graph = [graph_form(r) for r in raw]
    written = []
    for name, events in (("elastic-provisioninglogs-graph.ndjson", graph),
                         ("derived-skips.ndjson", derived_skips(graph[0]))):
        path = out / name
        path.write_text("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for p in main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE):
        print(p)
