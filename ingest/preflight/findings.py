"""Preflight findings (issue 26): what the next cycle will fail, skip or collide on, found from the source model
(who is assigned, with which attributes) and, optionally, the SCIM server's accounts, before Entra runs it.

Inputs, read through a narrow protocol so that any object with these fields works:

- users: :class:`ingest.preflight.effective.EffectiveUser`-like objects (``user_id``, ``user_principal_name``,
  ``how`` = direct | group | nested_only, ``app_role_ids``, ``default_access_only``, ``enabled``, ``in_scope``
  (True, False or an Unknown), ``attributes`` (target attribute -> value, None or an Unknown), ``nested_via``,
  ``found``);
- model: ``service_principal_id``, ``job_id``, ``matching_attributes`` ([(target attribute, source expression)] in
  precedence order), ``required_target_attributes``;
- targets: :class:`ingest.preflight.target.TargetAccount` values, or None when the target side was not read;
- work domains: the email domains the app accepts (:func:`work_domains`).

An attribute that evaluates to an Unknown (``.reason``) is never guessed: the finding says "unknown: <reason>" and
is flagged ``unknown``. Each finding carries the evidence, the outcome Entra would log (the error code or skip
reason: /work/shared/reference/entra-provisioning-logs.md section 3, ingest/skip_reasons.py) and the fix.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ingest.skip_reasons import CATEGORIES

# kind -> (label, the outcome Entra would log, the fix). The outcomes use Entra's words and codes.
KINDS: dict[str, tuple[str, str, str]] = {
    "duplicate_user_name": (
        "Duplicate userName",
        "failure: EntryConflict (<App>EntryConflict, SCIM 409 scimType uniqueness) for every colliding user but the "
        "first one created",
        "Make the mapped userName unique: change the UPN (or the userName mapping) of all but one of these users; "
        "userName is compared case-insensitively."),
    "target_conflict": (
        "Taken in the app",
        "failure: EntryConflict (<App>EntryConflict, SCIM 409 scimType uniqueness): the account is not matched, so "
        "Entra creates one and the app refuses the userName",
        "Link or remove the existing account: set its externalId (or the matching attribute) to the user's value, "
        "delete it if it is stale, or change the matching attribute so that Entra matches it."),
    "missing_required": (
        "Missing required attribute",
        "skipped: AttributeValidationFailed (\"<attribute> is missing or invalid\"; MandatoryFieldsMissing / "
        "MissingValues): the user is not created",
        CATEGORIES["missing_attribute"][1]),
    "non_work_email": (
        "Non-work email",
        "failure: HTTP 400 scimType invalidValue (the app accepts only work email)",
        "Give the user a work email in an allowed domain (the mail attribute in Entra ID, or the email mapping)."),
    "default_access_only": (
        "Default Access only",
        "skipped: NotEffectivelyEntitled (\"User has the required role\" = False: Default Access only)",
        CATEGORIES["default_access"][1]),
    "nested_group_only": (
        "Nested group only",
        "not provisioned: Entra provisioning does not expand nested groups (skipped as not assigned, or never "
        "evaluated)",
        "Assign the user directly, or assign the nested group itself (or move the user into the assigned group)."),
    "disabled_but_active_in_target": (
        "Disabled but active in the app",
        "disable: Entra deactivates the matched account (active = false), or skips the user as inactive "
        "(NotEffectivelyEntitled) when it matches none",
        "Nothing if the user should lose access (the next cycle disables the account); otherwise enable the user in "
        "Entra ID. If the account is not linked (externalId), deactivate it in the app yourself."),
    "orphan": (
        "Orphan account",
        "none: Entra never touches an account no assigned, enabled user matches (orphan-account discovery needs "
        "Microsoft Entra ID Governance)",
        "Deactivate or delete the account in the app, or assign (and enable) its owner in Entra ID so that Entra "
        "manages it."),
}

DEFAULT_ACCESS = "00000000-0000-0000-0000-000000000000"
# Case-insensitive SCIM attributes (RFC 7643: userName has caseExact false); the others compare exactly.
_CASE_INSENSITIVE = {"username"}


@dataclass(frozen=True)
class Finding:
    """One predicted problem. ``identity``: the Entra object id, or ``target:<SCIM id>`` for an orphan."""

    kind: str
    identity: str
    source_id: str | None
    user_principal_name: str | None
    user_name: str | None
    detail: str
    evidence: dict[str, Any] = field(default_factory=dict)
    group_key: str | None = None
    target_id: str | None = None
    unknown: bool = False

    @property
    def predicted_outcome(self) -> str:
        return KINDS[self.kind][1] if not self.unknown else f"{KINDS[self.kind][1]} (if {self.detail})"

    @property
    def recommended_action(self) -> str:
        return KINDS[self.kind][2]

    def row(self) -> dict[str, Any]:
        """The ``preflight_findings`` columns (but run_id)."""
        out = asdict(self)
        out["predicted_outcome"], out["recommended_action"] = self.predicted_outcome, self.recommended_action
        return out


def is_unknown(value: Any) -> bool:
    """An Unknown of ingest.preflight.expressions (or anything shaped like it: a ``reason`` and falsy)."""
    return hasattr(value, "reason") and not isinstance(value, (str, bytes, int, float, dict, list, tuple))


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == [] or value == {}


def _text(value: Any) -> str | None:
    if value is None or is_unknown(value):
        return None
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def _domain(email: str) -> str | None:
    return email.rsplit("@", 1)[1].strip().lower() if "@" in email else None


def work_domains(users: Iterable[Any], stored: Iterable[str] = (), allowed: Sequence[str] | None = None) -> set[str]:
    """The email domains the app accepts. ``allowed`` (given by the admin) wins; otherwise the store's logic for
    violations (``derived_work_domains``: UPN domains of successful events, email domains of successful creates;
    ``stored``) plus the UPN domains of the users found here (a UPN's domain is one of the tenant's, so a work one)."""
    if allowed:
        return {d.strip().lower() for d in allowed if d and d.strip()}
    out = {d.lower() for d in stored if d}
    for u in users:
        upn = getattr(u, "user_principal_name", None)
        if upn and "@" in upn and "#ext#" not in upn.lower():
            out.add(_domain(upn))
    out.discard(None)
    return out


def unknown_attributes(users: Sequence[Any]) -> dict[str, int]:
    """Target attributes that could not be evaluated, with how many users: said in the run's message even where no
    finding needs them."""
    out: dict[str, int] = defaultdict(int)
    for u in users:
        for attr, value in (getattr(u, "attributes", None) or {}).items():
            if is_unknown(value):
                out[attr] += 1
    return dict(sorted(out.items()))


def _provisioned(u: Any, *, disabled_too: bool = False) -> bool | Any:
    """Will Entra provision this user? True, False, or the Unknown of its scoping filter. ``disabled_too``: a
    disabled user counts (Entra manages its account: it disables it)."""
    if not getattr(u, "found", True) or u.how == "nested_only" or u.default_access_only or \
            (u.enabled is False and not disabled_too):
        return False
    return u.in_scope if (u.in_scope is True or is_unknown(u.in_scope)) else False


def _email_attributes(attributes: dict[str, Any]) -> list[str]:
    return [a for a in attributes if a.lower().startswith("emails")]


def _target_value(account: Any, attribute: str) -> Any:
    """The account's value of a target attribute; ``...`` when the target side does not carry it."""
    name = attribute.lower()
    if name == "username":
        return account.user_name
    if name == "externalid":
        return account.external_id
    if name == "id":
        return account.id
    if name.startswith("emails"):
        return list(account.emails)
    return ...


def _same(attribute: str, mine: Any, theirs: Any) -> bool:
    if isinstance(theirs, list):
        return any(_same(attribute, mine, t) for t in theirs)
    if mine is None or theirs is None:
        return False
    if attribute.lower() in _CASE_INSENSITIVE or attribute.lower().startswith("emails"):
        return str(mine).lower() == str(theirs).lower()
    return str(mine) == str(theirs)


def find(users: Sequence[Any], model: Any, targets: Sequence[Any] | None = None, *,
         domains: set[str] | None = None) -> list[Finding]:
    """Every finding, sorted by kind (as :data:`KINDS` lists them) and identity."""
    out: list[Finding] = []
    provisioned = [(u, p) for u in users if (p := _provisioned(u)) is not False]
    # a disabled user keeps its account's userName in the app (Entra disables, it does not delete): it collides too
    out += _duplicates([(u, p) for u in users if (p := _provisioned(u, disabled_too=True)) is not False])
    out += _missing(provisioned, model)
    if domains:
        out += _non_work_email(provisioned, domains)
    out += _default_access(users)
    out += _nested(users)
    if targets is not None:
        out += _target_conflicts(provisioned, model, targets)
        disabled = _disabled_active(users, targets)
        out += disabled
        # an account a disabled_but_active finding names is Entra's to disable: not also an orphan Entra never touches
        out += _orphans(users, targets, managed={f.target_id for f in disabled})
    order = list(KINDS)
    return sorted(out, key=lambda f: (order.index(f.kind), f.identity))


def _scope_note(p: Any) -> tuple[str, bool]:
    return (f"; in scope unknown: {p.reason}", True) if is_unknown(p) else ("", False)


def _duplicates(provisioned: list[tuple[Any, Any]]) -> list[Finding]:
    by_name: dict[str, list[tuple[Any, Any]]] = defaultdict(list)
    for u, p in provisioned:
        name = u.attributes.get("userName")
        if isinstance(name, str) and name.strip():
            by_name[name.strip().lower()].append((u, p))
    out = []
    for key, members in by_name.items():
        if len(members) < 2 or all(m.enabled is False for m, _ in members):  # nobody left to create: no conflict
            continue
        for u, p in members:
            note, unknown = _scope_note(p)
            if u.enabled is False:
                note += "; disabled: its account in the app, if it was provisioned, keeps the userName"
            others = sorted(f"{m.attributes['userName']} ({m.user_principal_name or m.user_id})"
                            for m, _ in members if m is not u)
            out.append(Finding(
                "duplicate_user_name", u.user_id, u.user_id, u.user_principal_name, u.attributes["userName"],
                f"userName {u.attributes['userName']!r} collides (case-insensitively) with {', '.join(others)}{note}",
                {"userName": u.attributes["userName"], "colliding_with": others,
                 "colliding_ids": sorted(m.user_id for m, _ in members if m is not u)}, group_key=key, unknown=unknown))
    return out


def _missing(provisioned: list[tuple[Any, Any]], model: Any) -> list[Finding]:
    required = list(dict.fromkeys([*model.required_target_attributes, *(t for t, _ in model.matching_attributes)]))
    out = []
    for u, p in provisioned:
        missing, unknown = [], []
        for attr in required:
            value = u.attributes.get(attr)
            if is_unknown(value):
                unknown.append(f"{attr}: {value.reason}")
            elif attr not in u.attributes:
                missing.append(f"{attr} (not mapped)")
            elif _blank(value):
                missing.append(attr)
        note, scope_unknown = _scope_note(p)
        if missing:
            extra = f"; unknown: {'; '.join(unknown)}" if unknown else ""
            out.append(Finding("missing_required", u.user_id, u.user_id, u.user_principal_name,
                               _text(u.attributes.get("userName")),
                               f"required attribute {', '.join(missing)} is empty{extra}{note}",
                               {"missing": missing, "unknown": unknown}, unknown=scope_unknown))
        elif unknown:
            out.append(Finding("missing_required", u.user_id, u.user_id, u.user_principal_name,
                               _text(u.attributes.get("userName")), f"unknown: {'; '.join(unknown)}{note}",
                               {"missing": [], "unknown": unknown}, unknown=True))
    return out


def _non_work_email(provisioned: list[tuple[Any, Any]], domains: set[str]) -> list[Finding]:
    out = []
    for u, p in provisioned:
        bad, unknown = [], []
        for attr in _email_attributes(u.attributes):
            value = u.attributes[attr]
            if is_unknown(value):
                unknown.append(f"{attr}: {value.reason}")
                continue
            for email in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(email, str) and "@" in email and _domain(email) not in domains:
                    bad.append((attr, email))
        note, scope_unknown = _scope_note(p)
        if bad:
            out.append(Finding(
                "non_work_email", u.user_id, u.user_id, u.user_principal_name, _text(u.attributes.get("userName")),
                "; ".join(f"{a} = {e} is not in a work domain ({', '.join(sorted(domains))})" for a, e in bad) + note,
                {"emails": [e for _, e in bad], "work_domains": sorted(domains)}, unknown=scope_unknown))
        elif unknown:
            out.append(Finding(
                "non_work_email", u.user_id, u.user_id, u.user_principal_name, _text(u.attributes.get("userName")),
                f"unknown: {'; '.join(unknown)}{note}", {"emails": [], "unknown": unknown}, unknown=True))
    return out


def _default_access(users: Sequence[Any]) -> list[Finding]:
    return [Finding("default_access_only", u.user_id, u.user_id, u.user_principal_name,
                    _text(u.attributes.get("userName")),
                    f"assigned ({u.how}) with only the Default Access role ({DEFAULT_ACCESS})",
                    {"app_role_ids": list(u.app_role_ids), "how": u.how})
            for u in users if getattr(u, "found", True) and u.how != "nested_only" and u.default_access_only
            and u.enabled is not False]


def _nested(users: Sequence[Any]) -> list[Finding]:
    return [Finding("nested_group_only", u.user_id, u.user_id, u.user_principal_name,
                    _text(u.attributes.get("userName")),
                    "reached only through a group nested in the assigned group(s) "
                    f"{', '.join(getattr(u, 'nested_via', []) or []) or '(unknown)'}",
                    {"nested_via": list(getattr(u, "nested_via", []) or [])})
            for u in users if getattr(u, "found", True) and u.how == "nested_only" and u.enabled is not False]


def _matches(u: Any, account: Any) -> bool:
    """The account is this user's: its externalId is the user's mapped externalId (or object id)."""
    ext = u.attributes.get("externalId")
    return account.external_id is not None and (
        account.external_id == u.user_id or (isinstance(ext, str) and account.external_id == ext))


def _target_conflicts(provisioned: list[tuple[Any, Any]], model: Any, targets: Sequence[Any]) -> list[Finding]:
    by_name: dict[str, list[Any]] = defaultdict(list)
    for t in targets:
        if t.user_name:
            by_name[t.user_name.lower()].append(t)
    out = []
    for u, p in provisioned:
        name = u.attributes.get("userName")
        if not isinstance(name, str) or not name.strip():
            continue
        for account in by_name.get(name.strip().lower(), []):
            matched, unknown = False, []
            if not model.matching_attributes:
                unknown.append("the job has no matching attribute")
            for attr, _ in model.matching_attributes:
                mine, theirs = u.attributes.get(attr), _target_value(account, attr)
                if is_unknown(mine):
                    unknown.append(f"{attr}: {mine.reason}")
                elif theirs is ...:
                    unknown.append(f"{attr}: the target side does not show it")
                elif _same(attr, mine, theirs):
                    matched = True
                    break
            if matched:
                continue
            note, scope_unknown = _scope_note(p)
            matching = ", ".join(a for a, _ in model.matching_attributes) or "(none)"
            detail = (f"the app already has userName {account.user_name!r} (account {account.id}, externalId "
                      f"{account.external_id!r}), which the matching attribute(s) {matching} do not match")
            if unknown:
                detail = f"unknown: {'; '.join(unknown)}; {detail}"
            out.append(Finding(
                "target_conflict", u.user_id, u.user_id, u.user_principal_name, name, detail + note,
                {"userName": name, "target_id": account.id, "target_user_name": account.user_name,
                 "target_external_id": account.external_id, "matching_attributes": matching},
                group_key=name.strip().lower(), target_id=account.id, unknown=bool(unknown) or scope_unknown))
            break
    return out


def _disabled_active(users: Sequence[Any], targets: Sequence[Any]) -> list[Finding]:
    out = []
    for u in users:
        if u.enabled is not False or not getattr(u, "found", True):
            continue
        for account in targets:
            if account.active is not False and _matches(u, account):
                out.append(Finding(
                    "disabled_but_active_in_target", u.user_id, u.user_id, u.user_principal_name, account.user_name,
                    f"accountEnabled is false in Entra ID, but the app's account {account.id} "
                    f"({account.user_name}) is active",
                    {"target_id": account.id, "target_user_name": account.user_name, "active": account.active},
                    target_id=account.id))
                break
    return out


def _orphans(users: Sequence[Any], targets: Sequence[Any], managed: set[str | None]) -> list[Finding]:
    owners = [u for u in users if getattr(u, "found", True) and u.how != "nested_only" and u.enabled is True]
    out = []
    for account in targets:
        if account.id in managed or any(_matches(u, account) for u in owners):
            continue
        why = ("has no externalId" if account.external_id is None
               else f"externalId {account.external_id!r} matches no assigned, enabled user")
        out.append(Finding(
            "orphan", f"target:{account.id}", None, None, account.user_name,
            f"the app's account {account.id} ({account.user_name}, {'active' if account.active else 'inactive'}) "
            f"{why}",
            {"target_id": account.id, "external_id": account.external_id, "active": account.active,
             "emails": list(account.emails)},
            target_id=account.id))
    return out
