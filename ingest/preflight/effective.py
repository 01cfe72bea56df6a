"""Who Entra will provision for one app, and with what (issue 26): the :class:`~ingest.preflight.source.SourceModel`
turned into one :class:`EffectiveUser` per user the app's assignments reach.

- ``how``: ``direct`` (a user assignment), ``group`` (a direct member of an assigned group) or ``nested_only``
  (reached only through a group nested in an assigned group: Entra provisioning does not expand nested groups, so
  such a user is not provisioned);
- ``app_role_ids``: the roles of the user's own assignment and of the assigned groups that hold it directly;
  ``default_access_only`` when every one is the all-zero Default Access role;
- ``in_scope``: the job's scoping filters (True, False or an :class:`~ingest.preflight.expressions.Unknown`);
- ``attributes``: every mapped target attribute evaluated (a value, None, or Unknown); a null falls back to the
  mapping's ``defaultValue``. The source attributes the provisioning service derives: ``objectId`` (the id) and
  ``IsSoftDeleted`` (taken as "True" for a disabled account, ``accountEnabled`` false: Entra soft-deletes, i.e.
  disables, the target account of a disabled user; an approximation, unassigned users are not read at all).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ingest.preflight.expressions import Unknown, evaluate
from ingest.preflight.source import DEFAULT_ACCESS, SourceModel, in_scope


@dataclass
class EffectiveUser:
    user_id: str
    user_principal_name: str | None
    how: str  # direct | group | nested_only
    app_role_ids: list[str]
    default_access_only: bool
    enabled: bool | None  # accountEnabled (None: Graph did not say)
    in_scope: bool | Unknown
    attributes: dict[str, Any] = field(default_factory=dict)  # target attribute -> value, None or Unknown
    groups: list[str] = field(default_factory=list)  # assigned groups holding the user directly
    nested_via: list[str] = field(default_factory=list)  # for nested_only: the assigned groups it sits below
    found: bool = True  # False: assigned, but Graph returned no such user


def source_view(user: dict[str, Any]) -> dict[str, Any]:
    """The user's attributes as the mappings read them: Graph's properties plus the derived ones."""
    view = dict(user)
    view.setdefault("objectId", user.get("id"))
    enabled = user.get("accountEnabled")
    view.setdefault("IsSoftDeleted", None if enabled is None else ("False" if enabled else "True"))
    return view


def evaluate_mappings(model: SourceModel, user: dict[str, Any], role_ids: list[str]) -> dict[str, Any]:
    view = source_view(user)
    roles = [{"appRoleId": r, "value": model.app_roles.get(r)} for r in role_ids]
    out: dict[str, Any] = {}
    for target, m in model.mappings.items():
        value = evaluate(m.expression, view, app_role_assignments=roles) if m.expression else None
        if value is None and m.default_value is not None:
            value = m.default_value
        out[target] = value
    return out


def _nested_reach(model: SourceModel, assigned_groups: set[str]) -> dict[str, set[str]]:
    """user id -> the assigned groups it sits below through at least one nested group."""
    reach: dict[str, set[str]] = {}
    for top in assigned_groups:
        seen, stack = {top}, [m.id for m in model.groups.get(top, []) if m.type == "group"]
        while stack:
            gid = stack.pop()
            if gid in seen:
                continue
            seen.add(gid)
            for m in model.groups.get(gid, []):
                if m.type == "group":
                    stack.append(m.id)
                elif m.type == "user":
                    reach.setdefault(m.id, set()).add(top)
    return reach


def effective_users(model: SourceModel) -> list[EffectiveUser]:
    """One EffectiveUser per user the assignments reach, by user id."""
    direct: dict[str, list[str]] = {}
    group_roles: dict[str, list[str]] = {}
    for a in model.assignments:
        if a.principal_type == "User":
            direct.setdefault(a.principal_id, []).append(a.app_role_id)
        elif a.principal_type == "Group":
            group_roles.setdefault(a.principal_id, []).append(a.app_role_id)
    via_group: dict[str, list[str]] = {}
    for gid in group_roles:
        for m in model.groups.get(gid, []):
            if m.type == "user":
                via_group.setdefault(m.id, []).append(gid)
    nested = _nested_reach(model, set(group_roles))
    out = []
    for uid in sorted(set(direct) | set(via_group) | set(nested)):
        groups = sorted(set(via_group.get(uid, [])))
        roles = list(direct.get(uid, []))
        for gid in groups:
            roles += group_roles[gid]
        how = "direct" if uid in direct else "group" if groups else "nested_only"
        user = model.users.get(uid)
        view = user or {"id": uid}
        out.append(EffectiveUser(
            user_id=uid, user_principal_name=view.get("userPrincipalName"), how=how,
            app_role_ids=sorted(set(roles)),
            default_access_only=bool(roles) and all(r == DEFAULT_ACCESS for r in roles),
            enabled=view.get("accountEnabled"), in_scope=in_scope(model, source_view(view)),
            attributes=evaluate_mappings(model, view, sorted(set(roles))) if user is not None else {},
            groups=groups, nested_via=sorted(nested.get(uid, ())) if how == "nested_only" else [],
            found=user is not None))
    return out
