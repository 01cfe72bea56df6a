"""Builds Graph v1.0 provisioningObjectSummary dicts (steps, modified properties, identities)."""

from __future__ import annotations

import json

from .model import MAPPED, App

SOURCE_SYSTEM = "Azure Active Directory"
INITIATED_BY = {"id": "", "displayName": "Azure AD Provisioning Service", "initiatorType": "system"}
USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
SCOPE_RESULT = json.dumps({"ScopingFilterGroups": [{"Clauses": [
    {"Attribute": "department", "Operator": "NOT EQUALS", "Value": "Contractors", "Result": False}]}],
    "Result": False}, separators=(",", ":"))

_SCOPE_KEYS = {"inactive": "Active in the source system", "not_assigned": "Assigned to the application",
               "default_access": "User has the required role",
               "out_of_scope": "Scoping filter evaluation passed"}
_EXPORT = {"create": ("EntryExportAdd", "created", "create"),
           "update": ("EntryExportUpdate", "updated", "update"),
           "disable": ("EntryExportUpdateSoftDelete", "disabled", "disable"),
           "delete": ("EntryExportDelete", "deleted", "delete")}


def _step(name: str, kind: str, status: str, description: str, details: dict) -> dict:
    return {"name": name, "provisioningStepType": kind, "status": status, "description": description,
            "details": details}


def steps(op: str, upn: str, source_id: str, active: str, app_name: str, initial: bool,
          ok: bool) -> list[dict]:
    """The import/scoping/matching/export steps of one change. op: create, update, disable, delete,
    a skip category (default_access, not_assigned, out_of_scope, inactive) or no_change."""
    if initial:
        first = _step("EntryImport", "import", "success",
                      f"Retrieved User '{upn}' from {SOURCE_SYSTEM}", {})
    else:
        name, change = {"create": ("EntryImportAdd", "Add"), "delete": ("EntryImportDelete", "Delete")}.get(
            op, ("EntryImportUpdate", "Update"))
        first = _step(name, "import", "success",
                      f"Received User '{upn}' change of type ({change}) from {SOURCE_SYSTEM}", {})
    first["details"] = {"objectId": source_id, "accountEnabled": active, "userPrincipalName": upn,
                        "IsSoftDeleted": "True" if op == "delete" else "False"}
    out = [first]
    if op != "delete":
        scope = {key: "True" for key in _SCOPE_KEYS.values()}
        status = "success"
        if op in _SCOPE_KEYS:
            scope[_SCOPE_KEYS[op]] = "False"
            status = "skipped"
            if op == "out_of_scope":
                scope["ScopeEvaluationResult"] = SCOPE_RESULT
            else:
                scope["SkipReason"] = "NotEffectivelyEntitled"
        elif op == "disable":
            scope["Active in the source system"] = "False"
        out.append(_step("EntrySynchronizationScoping", "scoping", status,
                         "Determine if User in scope by evaluating against each scoping filter", scope))
    if op == "create":
        out.append(_step("EntrySynchronizationAdd", "matching", "success",
                         f"User '{upn}' will be created in {app_name} (User is active and assigned in "
                         f"{SOURCE_SYSTEM}, but no matching User was found in {app_name})", {}))
    elif op == "update":
        out.append(_step("EntrySynchronizationUpdate", "matching", "success",
                         f"User '{upn}' will be updated in {app_name} (User is active and assigned in "
                         f"{SOURCE_SYSTEM}, and a matching User was found in {app_name})", {}))
    elif op == "disable":
        out.append(_step("EntrySynchronizationUpdate", "matching", "success",
                         f"User '{upn}' will be disabled in {app_name} (User is no longer active in "
                         f"{SOURCE_SYSTEM})", {}))
    elif op == "no_change":
        out.append(_step("EntrySynchronizationSkip", "matching", "skipped",
                         f"User '{upn}' will be skipped: the User in {app_name} already has the values "
                         f"from {SOURCE_SYSTEM}", {}))
    if op in _EXPORT:
        name, done, verb = _EXPORT[op]
        text = f"User '{upn}' was {done} in {app_name}"
        if not ok:
            text = f"Failed to {verb} User '{upn}' in {app_name}"
        out.append(_step(name, "export", "success" if ok else "failure", text, {"ReportableIdentifier": upn}))
    return out


def modified(op: str, src: dict, tgt: dict | None) -> list[dict]:
    """modifiedProperties: all mapped values on create, the differences on update."""
    if op == "create":
        return [{"displayName": k, "oldValue": None, "newValue": src[k]} for k in MAPPED]
    if op == "update":
        return [{"displayName": k, "oldValue": tgt[k], "newValue": src[k]}
                for k in MAPPED if tgt is not None and src[k] != tgt[k]]
    if op == "disable":
        return [{"displayName": "active", "oldValue": "True", "newValue": "False"}]
    return []


def error_information(code: str | None, category: str | None, reason: str) -> dict:
    return {"errorCode": code, "errorCategory": category, "reason": reason, "additionalDetails": None,
            "recommendedAction": None}


def event(*, app: App, tenant_id: str, source_system_id: str, event_id: str, when: str, cycle_id: str,
          change_id: str, duration_ms: int, action: str, status: str, error: dict | None,
          step_list: list[dict], props: list[dict], source_id: str, src: dict, target_id: str,
          target_name: str) -> dict:
    """One provisioningObjectSummary with the full v1.0 shape."""
    return {
        "id": event_id,
        "activityDateTime": when,
        "tenantId": tenant_id,
        "jobId": app.job_id,
        "cycleId": cycle_id,
        "changeId": change_id,
        "provisioningAction": action,
        "durationInMilliseconds": duration_ms,
        "provisioningStatusInfo": {"status": status, "errorInformation": error},
        "provisioningSteps": step_list,
        "modifiedProperties": props,
        "servicePrincipal": {"id": app.sp_id, "displayName": app.name},
        "sourceSystem": {"id": source_system_id, "displayName": SOURCE_SYSTEM, "details": {}},
        "targetSystem": {"id": app.target_system_id, "displayName": app.name, "details": {
            "ApplicationId": app.app_id, "ServicePrincipalId": app.sp_id,
            "ServicePrincipalDisplayName": app.name}},
        "initiatedBy": dict(INITIATED_BY),
        "sourceIdentity": {"id": source_id, "displayName": src["displayName"], "identityType": "User",
                           "details": {"id": source_id, "odatatype": "User",
                                       "DisplayName": src["displayName"],
                                       "UserPrincipalName": src["userName"]}},
        "targetIdentity": {"id": target_id, "displayName": target_name, "identityType": USER_URN,
                           "details": {}},
    }
