"""Preflight's source side (issue 26): what Entra will provision for one app, read from Microsoft Graph.

:func:`fetch_source_model` (async, on a :class:`ingest.graph.client.GraphSession`: the pull's msgraph-sdk requests,
pacing and retries) and :func:`read_source_model` (sync, from the pull's settings) read
- the job's schema, ``GET /servicePrincipals/{id}/synchronization/jobs/{jobId}/schema`` (a synchronizationSchema:
  ``synchronizationRules[].objectMappings[]`` with ``attributeMappings[]`` (``targetAttributeName``, ``source``: an
  attributeMappingSource whose ``expression`` is the text, ``matchingPriority`` > 0 for matching attributes, lowest
  first, ``flowType``, ``defaultValue``) and ``scope`` (a filter: ``groups[]`` of ``clauses[]`` with
  ``sourceOperandName``, ``operatorName``, ``targetOperand.values``: the groups OR-ed, the clauses AND-ed), and
  ``directories[].objects[].attributes[]`` with ``required``); the enabled object mapping from User is used;
- the app's roles (``GET /servicePrincipals/{id}?$select=id,appRoles``), its assignments
  (``/servicePrincipals/{id}/appRoleAssignedTo``, paged: users and groups with their ``appRoleId``; Default Access is
  the all-zero id), the direct members of every assigned group and of the groups nested in them
  (``/groups/{id}/members``, paged), and the users (``/users?$filter=id in (...)``, 15 ids a request, ``$select`` of
  the attributes the mappings and the scoping filter read, plus ``accountEnabled``).

Scoping filter operators (Microsoft's "Scoping users or groups to be provisioned with scoping filters",
https://learn.microsoft.com/en-us/entra/identity/app-provisioning/define-conditional-rules-for-provisioning-user-accounts):
EQUALS / NOT EQUALS (case-sensitive), IS NULL / IS NOT NULL, IS TRUE / IS FALSE, REGEX MATCH / NOT REGEX MATCH,
Includes, ENDS_WITH, Greater_Than(_OR_EQUALS) (integers); "Scoping filters will return false if the value is
null / empty" (except IS NULL). Names are compared without case, spaces or underscores (the portal shows
``NOT EQUALS``, the API may say ``NOT_EQUALS``). Others (``&``, ``!&``, IsMemberOf) are Unknown.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any

from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.groups.item.members.members_request_builder import MembersRequestBuilder
from msgraph.generated.service_principals.item.app_role_assigned_to.app_role_assigned_to_request_builder import (
    AppRoleAssignedToRequestBuilder,
)
from msgraph.generated.service_principals.item.service_principal_item_request_builder import (
    ServicePrincipalItemRequestBuilder,
)
from msgraph.generated.users.users_request_builder import UsersRequestBuilder

from ingest.preflight.expressions import Unknown, attributes_read, net_regex

DEFAULT_ACCESS = "00000000-0000-0000-0000-000000000000"
USERS_PER_REQUEST = 15  # ids in one ``id in (...)`` filter
PAGE_SIZE = 999
MAX_PAGES = 10_000
# Source attributes the provisioning service derives (not Graph user properties): never put in $select.
DERIVED_ATTRIBUTES = {"objectId": "id", "IsSoftDeleted": None, "appRoleAssignments": None}


class PreflightError(Exception):
    """The source side cannot be read as asked (no job, no user object mapping); the message is for a person."""


@dataclass(frozen=True)
class Assignment:
    """One appRoleAssignment of the app: a user or a group holding a role."""

    principal_id: str
    principal_type: str  # User | Group | ServicePrincipal
    app_role_id: str
    principal_display_name: str | None = None


@dataclass(frozen=True)
class Member:
    """A direct member of a group: ``type`` is ``user`` or ``group`` (or another directory object type)."""

    id: str
    type: str


@dataclass(frozen=True)
class AttributeMapping:
    """A target attribute and where its value comes from (``expression`` None: only ``default_value``)."""

    target: str
    expression: str | None
    default_value: str | None = None
    flow_type: str = "Always"
    matching_priority: int = 0


@dataclass(frozen=True)
class FilterClause:
    attribute: str
    operator: str
    values: tuple[str, ...] = ()


@dataclass
class SourceModel:
    """The source side of one app's job. ``scoping_filters``: groups OR-ed, each a list of clauses AND-ed (empty:
    everyone assigned is in scope). ``users``: id -> the Graph user's selected properties (``accountEnabled``
    included). ``groups``: id -> direct members, for the assigned groups and the groups nested in them."""

    service_principal_id: str
    job_id: str
    assignments: list[Assignment] = field(default_factory=list)
    groups: dict[str, list[Member]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    mappings: dict[str, AttributeMapping] = field(default_factory=dict)
    matching_attributes: list[tuple[str, str | None]] = field(default_factory=list)
    scoping_filters: list[list[FilterClause]] = field(default_factory=list)
    required_target_attributes: list[str] = field(default_factory=list)
    app_roles: dict[str, str] = field(default_factory=dict)  # role id -> its value (or display name)
    source_object: str = "User"
    target_object: str = "User"


# ----------------------------------------------------------------------------- the schema
def mapping_expression(source: Any) -> str | None:
    """The expression text of an attributeMappingSource: its ``expression``, else rebuilt from type and name."""
    if not isinstance(source, dict):
        return None
    if isinstance(source.get("expression"), str) and source["expression"].strip():
        return source["expression"]
    name, kind = source.get("name"), source.get("type") or "Attribute"
    if not isinstance(name, str):
        return None
    if kind == "Attribute":
        return f"[{name}]"
    if kind == "Constant":
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    params = [mapping_expression((p or {}).get("value")) or "" for p in source.get("parameters") or []]
    return f"{name}({', '.join(params)})"


def parse_schema(schema: dict, service_principal_id: str, job_id: str) -> SourceModel:
    """A SourceModel's schema half from a synchronizationSchema document (assignments, groups, users empty)."""
    chosen = None
    for rule in schema.get("synchronizationRules") or []:
        for om in rule.get("objectMappings") or []:
            if om.get("sourceObjectName", "").lower() == "user" and om.get("enabled", True):
                chosen = (rule, om)
                break
        if chosen:
            break
    if chosen is None:
        raise PreflightError(f"the schema of job {job_id} has no enabled object mapping from User")
    rule, om = chosen
    model = SourceModel(service_principal_id, job_id, source_object=om.get("sourceObjectName") or "User",
                        target_object=om.get("targetObjectName") or "User")
    for am in om.get("attributeMappings") or []:
        target = am.get("targetAttributeName")
        if not isinstance(target, str):
            continue
        model.mappings[target] = AttributeMapping(
            target, mapping_expression(am.get("source")), am.get("defaultValue"), am.get("flowType") or "Always",
            int(am.get("matchingPriority") or 0))
    model.matching_attributes = [(m.target, m.expression) for m in sorted(
        (m for m in model.mappings.values() if m.matching_priority > 0), key=lambda m: m.matching_priority)]
    scope = om.get("scope") or {}
    for group in scope.get("groups") or []:
        clauses = [FilterClause(c.get("sourceOperandName") or "", c.get("operatorName") or "",
                                tuple((c.get("targetOperand") or {}).get("values") or ()))
                   for c in group.get("clauses") or []]
        if clauses:
            model.scoping_filters.append(clauses)
    target_dir = (rule.get("targetDirectoryName") or "").lower()
    for directory in schema.get("directories") or []:
        if (directory.get("name") or "").lower() != target_dir and (directory.get("id") or "").lower() != target_dir:
            continue
        for obj in directory.get("objects") or []:
            if (obj.get("name") or "").lower() == model.target_object.lower():
                model.required_target_attributes = [a["name"] for a in obj.get("attributes") or []
                                                    if a.get("required") and isinstance(a.get("name"), str)]
    return model


def source_attributes(model: SourceModel) -> list[str]:
    """The Graph user properties to ``$select``: what the mappings and the scoping filter read, plus
    ``accountEnabled``, ``userPrincipalName`` and ``displayName``; derived attributes are mapped or left out."""
    names: set[str] = {"accountEnabled", "userPrincipalName", "displayName"}
    for m in model.mappings.values():
        names |= attributes_read(m.expression) if m.expression else set()
    names |= {c.attribute for group in model.scoping_filters for c in group}
    out = set()
    for name in names:
        if name in DERIVED_ATTRIBUTES:
            if DERIVED_ATTRIBUTES[name]:
                out.add(DERIVED_ATTRIBUTES[name])
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            out.add(name)
    return sorted(out - {"id"})


# ----------------------------------------------------------------------------- scoping filters
def _op(name: str) -> str:
    return re.sub(r"[\s_]", "", name).upper()


def _clause(clause: FilterClause, user: dict[str, Any]) -> bool | Unknown:
    value = user.get(clause.attribute)
    if isinstance(value, list):
        return Unknown(f"scoping filter on the multi-valued attribute {clause.attribute}")
    text = None if value is None else ("True" if value is True else "False" if value is False else str(value))
    op, target = _op(clause.operator), clause.values[0] if clause.values else ""
    empty = text in (None, "")
    if op == "ISNULL":
        return empty
    if op == "ISNOTNULL":
        return not empty
    if empty:
        return False  # "Scoping filters will return false if the value is null / empty."
    try:
        if op == "EQUALS":
            return text == target
        if op == "NOTEQUALS":
            return text != target
        if op == "ISTRUE":
            return text.lower() == "true"
        if op == "ISFALSE":
            return text.lower() == "false"
        if op == "REGEXMATCH":
            return net_regex(target).search(text) is not None
        if op == "NOTREGEXMATCH":
            return net_regex(target).search(text) is None
        if op == "INCLUDES":
            return target in text
        if op == "ENDSWITH":
            return text.endswith(target)
        if op in ("GREATERTHAN", "GREATERTHANOREQUALS"):
            a, b = int(text), int(target)
            return a > b if op == "GREATERTHAN" else a >= b
    except (re.error, ValueError) as exc:
        return Unknown(f"scoping clause {clause.attribute} {clause.operator}: {exc}")
    return Unknown(f"scoping filter operator {clause.operator} is not supported by preflight")


def in_scope(model: SourceModel, user: dict[str, Any]) -> bool | Unknown:
    """True/False per the scoping filters (any group whose clauses all hold), or Unknown."""
    if not model.scoping_filters:
        return True
    unknown = None
    for group in model.scoping_filters:
        results = [_clause(c, user) for c in group]
        if any(r is False for r in results):
            continue
        if all(r is True for r in results):
            return True
        unknown = next(r for r in results if isinstance(r, Unknown))
    return unknown if unknown is not None else False


# ----------------------------------------------------------------------------- reading Graph
async def _collect(session, request, next_request, what: str) -> list[dict]:
    rows: list[dict] = []
    for _ in range(MAX_PAGES):
        doc = await session.get_json(request, what)
        rows.extend(v for v in doc.get("value") or [] if isinstance(v, dict))
        link = doc.get("@odata.nextLink")
        if not isinstance(link, str) or not link:
            return rows
        request = next_request(link)
    raise PreflightError(f"{what}: more than {MAX_PAGES} pages")


def _member_type(obj: dict) -> str:
    kind = str(obj.get("@odata.type") or "")
    return kind.rsplit(".", 1)[-1].lower() if kind else "unknown"


async def fetch_source_model(session, service_principal_id: str, job_id: str | None = None) -> SourceModel:
    """Read one app's source side through ``session`` (see the module docstring)."""
    client = session.client
    sp = client.service_principals.by_service_principal_id(service_principal_id)
    if job_id is None:
        from ingest.graph.jobs import fetch_job_snapshots

        jobs = sorted(s["job"]["id"] for s in await fetch_job_snapshots(session, service_principal_id))
        if not jobs:
            raise PreflightError(f"service principal {service_principal_id} has no provisioning job")
        job_id = jobs[0]
    schema = await session.get_json(sp.synchronization.jobs.by_synchronization_job_id(job_id).schema
                                    .to_get_request_information(), f"schema of job {job_id}")
    model = parse_schema(schema, service_principal_id, job_id)

    sp_params = ServicePrincipalItemRequestBuilder.ServicePrincipalItemRequestBuilderGetQueryParameters(
        select=["id", "appRoles"])
    sp_doc = await session.get_json(sp.to_get_request_information(RequestConfiguration(query_parameters=sp_params)),
                                    f"service principal {service_principal_id}")
    for role in sp_doc.get("appRoles") or []:
        if isinstance(role, dict) and role.get("id"):
            model.app_roles[role["id"]] = role.get("value") or role.get("displayName") or role["id"]

    params = AppRoleAssignedToRequestBuilder.AppRoleAssignedToRequestBuilderGetQueryParameters(top=PAGE_SIZE)
    rows = await _collect(session, sp.app_role_assigned_to.to_get_request_information(
        RequestConfiguration(query_parameters=params)),
        lambda link: sp.app_role_assigned_to.with_url(link).to_get_request_information(),
        f"assignments of service principal {service_principal_id}")
    model.assignments = [Assignment(r["principalId"], r.get("principalType") or "User",
                                    r.get("appRoleId") or DEFAULT_ACCESS, r.get("principalDisplayName"))
                         for r in rows if r.get("principalId")]

    pending = [a.principal_id for a in model.assignments if a.principal_type == "Group"]
    user_ids = {a.principal_id for a in model.assignments if a.principal_type == "User"}
    while pending:
        gid = pending.pop(0)
        if gid in model.groups:
            continue
        group = client.groups.by_group_id(gid)
        params = MembersRequestBuilder.MembersRequestBuilderGetQueryParameters(top=PAGE_SIZE)
        members = await _collect(session, group.members.to_get_request_information(
            RequestConfiguration(query_parameters=params)),
            lambda link, group=group: group.members.with_url(link).to_get_request_information(),
            f"members of group {gid}")
        model.groups[gid] = [Member(m["id"], _member_type(m)) for m in members if m.get("id")]
        for m in model.groups[gid]:
            if m.type == "group" and m.id not in model.groups:
                pending.append(m.id)
            elif m.type == "user":
                user_ids.add(m.id)

    select = source_attributes(model)
    ordered = sorted(user_ids)
    for i in range(0, len(ordered), USERS_PER_REQUEST):
        batch = ordered[i:i + USERS_PER_REQUEST]
        flt = "id in (" + ",".join(f"'{u}'" for u in batch) + ")"
        params = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(filter=flt, select=["id", *select],
                                                                           top=PAGE_SIZE)
        for row in await _collect(session, client.users.to_get_request_information(
                RequestConfiguration(query_parameters=params)),
                lambda link: client.users.with_url(link).to_get_request_information(),
                f"users {i + 1}-{i + len(batch)} of {len(ordered)}"):
            if row.get("id"):
                model.users[row["id"]] = {k: v for k, v in row.items() if not k.startswith("@odata")}
    return model


def read_source_model(settings, service_principal_id: str, job_id: str | None = None, *, log=None) -> SourceModel:
    """:func:`fetch_source_model` with a session of its own, built from the pull's settings (``base_url``,
    ``auth``, ``credential``, ``rate``, ``policy``, ``timeout``: a :class:`ingest.graph.pull.PullSettings`)."""
    from ingest.graph.auth import build_auth_provider
    from ingest.graph.client import GraphSession
    from ingest.graph.log import RunLog
    from ingest.graph.pacing import Pacer

    async def go() -> SourceModel:
        provider, _method = build_auth_provider(settings.auth, credential=getattr(settings, "credential", None))
        async with GraphSession(provider, settings.base_url, pacer=Pacer(settings.rate), policy=settings.policy,
                                log=log or RunLog(), timeout=getattr(settings, "timeout", 60.0)) as session:
            return await fetch_source_model(session, service_principal_id, job_id)
    return asyncio.run(go())
