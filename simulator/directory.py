"""The tenant's directory as Graph shows it at the end of the period: users, groups, app role assignments and each
job's synchronization schema (issue 26, preflight's source side). Derived from the story without drawing from any
random generator, so every other part of the simulation stays as it was.

Who is assigned how (per app, from ``App.roster``):
- ``user`` roster entries: every third one (by index) directly with the app role "User", the rest as direct
  members of the group "<app> users", which is assigned "User";
- ``not_assigned``: direct members of "<app> contractors", a group nested in "<app> users" and not assigned itself
  (Entra provisioning does not expand nested groups: the log calls them not assigned);
- ``default_access``: the first through the group "<app> all staff" (assigned Default Access, the all-zero role),
  the rest directly with Default Access;
- ``out_of_scope``: directly with "User", but ``userType`` Guest, outside the job's scoping filter
  (``userType EQUALS Member``);
- ``inactive``: directly with "User", ``accountEnabled`` false.
Leavers keep their assignments disabled; purged leavers are gone. One planted user, assigned directly to the first
app only, has no surname (``name.familyName`` is required): she never appears in the logs (assigned after them).

The schema maps userName from ``ToLower([userPrincipalName])``, active from a ``Switch`` on ``IsSoftDeleted``,
title from a ``Replace``, roles from ``AppRoleAssignmentsComplex`` (which preflight cannot evaluate), and matches on
externalId (objectId), as the engine does.
"""

from __future__ import annotations

import uuid

from .model import EMAIL, App
from .names import ORG_DOMAINS
from .story import Story

DEFAULT_ACCESS = "00000000-0000-0000-0000-000000000000"
SOURCE_DIRECTORY = "Azure Active Directory"
TARGET_DIRECTORY = "customappsso"
PLANTED_NO_SURNAME = ("Nomvula", "nomvula")  # given name, UPN local part: no story UPN lacks a "."


def _id(tenant_id: str, *parts: str) -> str:
    return str(uuid.uuid5(uuid.UUID(tenant_id), "/".join(parts)))


def final_state(story: Story) -> tuple[dict[int, dict[str, str]], set[int]]:
    """Each user's SCIM-mapped attributes after every change of the story, and the purged users."""
    state = {u.idx: dict(u.attrs) for u in story.users}
    purged: set[int] = set()
    for c in story.changes:
        if c.kind == "purge":
            purged.add(c.user)
        elif c.kind in ("update", "leave", "join"):
            state[c.user].update(c.attrs)
    return state, purged


def _graph_user(object_id: str, attrs: dict[str, str], user_type: str = "Member") -> dict:
    return {"id": object_id, "userPrincipalName": attrs["userName"], "mail": attrs.get(EMAIL),
            "givenName": attrs.get("name.givenName"), "surname": attrs.get("name.familyName"),
            "displayName": attrs.get("displayName"), "department": attrs.get("department"),
            "jobTitle": attrs.get("title"), "accountEnabled": attrs.get("active") != "False", "userType": user_type}


# ----------------------------------------------------------------------------- the job schema
def _attr(name: str) -> dict:
    return {"expression": f"[{name}]", "name": name, "parameters": [], "type": "Attribute"}


def _const(value: str) -> dict:
    return {"expression": '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"', "name": value,
            "parameters": [], "type": "Constant"}


def _fn(name: str, expression: str, params: list[tuple[str, dict]]) -> dict:
    return {"expression": expression, "name": name, "type": "Function",
            "parameters": [{"key": k, "value": v} for k, v in params]}


def _mapping(target: str, source: dict | None, *, matching: int = 0, default: str | None = None,
             flow: str = "Always") -> dict:
    return {"defaultValue": default, "exportMissingReferences": False, "flowBehavior": "FlowWhenChanged",
            "flowType": flow, "matchingPriority": matching, "source": source, "targetAttributeName": target}


USER_MAPPINGS = [
    _mapping("userName", _fn("ToLower", "ToLower([userPrincipalName])", [("source", _attr("userPrincipalName"))])),
    _mapping("active", _fn("Switch", 'Switch([IsSoftDeleted], , "False", "True", "True", "False")', [
        ("source", _attr("IsSoftDeleted")), ("False", _const("True")), ("True", _const("False"))])),
    _mapping(EMAIL, _attr("mail")),
    _mapping("displayName", _attr("displayName")),
    _mapping("name.givenName", _attr("givenName")),
    _mapping("name.familyName", _attr("surname")),
    _mapping("department", _attr("department")),
    _mapping("title", _fn("Replace", 'Replace([jobTitle], "Sr. ", , , "Senior ", , )', [
        ("source", _attr("jobTitle")), ("oldValue", _const("Sr. ")), ("replacementValue", _const("Senior "))])),
    _mapping("externalId", _attr("objectId"), matching=1),
    _mapping("roles", _fn("AppRoleAssignmentsComplex", "AppRoleAssignmentsComplex([appRoleAssignments])",
                          [("source", _attr("appRoleAssignments"))])),
]
REQUIRED_TARGET = ("userName", "name.familyName")
SCOPE_CLAUSE = {"operatorName": "EQUALS", "sourceOperandName": "userType", "targetOperand": {"values": ["Member"]}}


def job_schema(app: App) -> dict:
    """``GET /servicePrincipals/{id}/synchronization/jobs/{jobId}/schema`` for the app's job."""
    source_attrs = ["objectId", "userPrincipalName", "mail", "givenName", "surname", "displayName", "department",
                    "jobTitle", "accountEnabled", "userType", "IsSoftDeleted", "appRoleAssignments"]
    target_attrs = [m["targetAttributeName"] for m in USER_MAPPINGS]
    return {
        "id": app.job_id,
        "version": "Date:2026-10-01T00:00:00Z~###~Version:1",
        "synchronizationRules": [{
            "editable": True, "id": f"{app.template_id}.rule", "name": "USER_TO_USER", "priority": 1,
            "metadata": [], "sourceDirectoryName": SOURCE_DIRECTORY, "targetDirectoryName": TARGET_DIRECTORY,
            "objectMappings": [
                {"enabled": False, "flowTypes": "Add, Update, Delete", "metadata": [], "name":
                    "Provision Microsoft Entra ID Groups", "scope": None, "sourceObjectName": "Group",
                 "targetObjectName": "Group", "attributeMappings": [
                     _mapping("displayName", _attr("displayName"), matching=1)]},
                {"enabled": True, "flowTypes": "Add, Update, Delete", "metadata": [], "name":
                    "Provision Microsoft Entra ID Users", "sourceObjectName": "User", "targetObjectName": "User",
                 "scope": {"categoryFilterGroups": [], "inputFilterGroups": [],
                           "groups": [{"name": "Members only", "clauses": [SCOPE_CLAUSE]}]},
                 "attributeMappings": USER_MAPPINGS},
            ],
        }],
        "directories": [
            {"id": "AzureActiveDirectory", "name": SOURCE_DIRECTORY, "objects": [{
                "name": "User", "attributes": [{"name": a, "type": "String", "required": False, "anchor":
                                                a == "objectId", "multivalued": a == "appRoleAssignments"}
                                               for a in source_attrs]}]},
            {"id": TARGET_DIRECTORY, "name": TARGET_DIRECTORY, "objects": [{
                "name": "User", "attributes": [{"name": a, "type": "String", "required": a in REQUIRED_TARGET,
                                                "anchor": a == "externalId", "multivalued": a == "roles"}
                                               for a in target_attrs]}]},
        ],
    }


# ----------------------------------------------------------------------------- the directory
def build_directory(story: Story) -> dict:
    """``{"users": {id: user}, "groups": {id: group}, "service_principals": {id: sp}, "planted": {...}}``; a group
    holds ``members`` (``{"id", "type"}``, type ``user`` or ``group``), a service principal its ``appRoles``,
    ``assignments`` (appRoleAssignment resources) and ``schemas`` (job id -> schema)."""
    tenant = story.tenant_id
    state, purged = final_state(story)
    users: dict[str, dict] = {}
    by_idx: dict[int, str] = {}
    for u in story.users:
        if u.idx in purged:
            continue
        roster_types = {app.roster.get(u.idx) for app in story.apps}
        user_type = "Guest" if "out_of_scope" in roster_types else "Member"
        users[u.object_id] = _graph_user(u.object_id, state[u.idx], user_type)
        by_idx[u.idx] = u.object_id
    given, local = PLANTED_NO_SURNAME
    planted_id = _id(tenant, "user", local)
    planted_upn = f"{local}@{ORG_DOMAINS[0]}"
    users[planted_id] = _graph_user(planted_id, {
        "userName": planted_upn, EMAIL: planted_upn, "name.givenName": given, "displayName": given,
        "department": "Engineering", "title": "Software Engineer", "active": "True"})
    users[planted_id]["surname"] = None

    groups: dict[str, dict] = {}
    sps: dict[str, dict] = {}
    for n, app in enumerate(story.apps):
        role_user = _id(tenant, app.key, "role", "User")
        app_roles = [{"id": role_user, "value": "User", "displayName": "User", "isEnabled": True,
                      "allowedMemberTypes": ["User"]}]
        main, nested, staff = (_id(tenant, app.key, "group", g) for g in ("users", "contractors", "all-staff"))
        groups[main] = {"id": main, "displayName": f"{app.name} users", "members": []}
        groups[nested] = {"id": nested, "displayName": f"{app.name} contractors", "members": []}
        groups[staff] = {"id": staff, "displayName": f"{app.name} all staff", "members": []}
        groups[main]["members"].append({"id": nested, "type": "group"})
        assignments: list[dict] = []

        def assign(principal: str, kind: str, role: str, name: str, app: App = app, out: list = assignments) -> None:
            out.append({"id": _id(tenant, app.key, "assignment", principal, role), "appRoleId": role,
                        "principalId": principal, "principalType": kind, "principalDisplayName": name,
                        "resourceId": app.sp_id, "resourceDisplayName": app.name,
                        "createdDateTime": "2026-01-05T09:00:00Z"})

        assign(main, "Group", role_user, groups[main]["displayName"])
        assign(staff, "Group", DEFAULT_ACCESS, groups[staff]["displayName"])
        plain = sorted(i for i, role in app.roster.items() if role == "user" and i in by_idx)
        defaults = sorted(i for i, role in app.roster.items() if role == "default_access" and i in by_idx)
        for k, idx in enumerate(plain):
            oid = by_idx[idx]
            if k % 3 == 0:
                assign(oid, "User", role_user, users[oid]["displayName"])
            else:
                groups[main]["members"].append({"id": oid, "type": "user"})
        for k, idx in enumerate(defaults):
            oid = by_idx[idx]
            if k == 0:
                groups[staff]["members"].append({"id": oid, "type": "user"})
            else:
                assign(oid, "User", DEFAULT_ACCESS, users[oid]["displayName"])
        for idx, role in sorted(app.roster.items()):
            if idx not in by_idx:
                continue
            oid = by_idx[idx]
            if role == "not_assigned":
                groups[nested]["members"].append({"id": oid, "type": "user"})
            elif role in ("out_of_scope", "inactive"):
                assign(oid, "User", role_user, users[oid]["displayName"])
        if n == 0:
            assign(planted_id, "User", role_user, users[planted_id]["displayName"])
        sps[app.sp_id] = {"id": app.sp_id, "displayName": app.name, "appRoles": app_roles,
                          "assignments": assignments, "schemas": {app.job_id: job_schema(app)}}
    return {"users": users, "groups": groups, "service_principals": sps,
            "planted": {"no_surname": planted_id, "no_surname_app": story.apps[0].sp_id}}
