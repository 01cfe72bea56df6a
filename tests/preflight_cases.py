"""Hand-built preflight inputs with planted problems, shared by the findings and the check tests.

The users and the model are plain local dataclasses mirroring the fields of ingest/preflight/effective.py's
EffectiveUser and source.py's SourceModel (the narrow protocol ingest/preflight/findings.py reads), not the source
model's own code: these tests use hand-built inputs. :data:`PLANTED` is the ground truth, written by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ingest.preflight.target import TargetAccount

DEFAULT_ACCESS = "00000000-0000-0000-0000-000000000000"
ROLE = "11111111-2222-3333-4444-555555555555"
SP = "c0ffee00-0000-4000-8000-000000000001"
JOB = "scim.preflight.job"


@dataclass(frozen=True)
class Unknown:
    """Mirrors ingest.preflight.expressions.Unknown."""

    reason: str

    def __bool__(self) -> bool:
        return False


@dataclass
class User:
    """Mirrors ingest.preflight.effective.EffectiveUser."""

    user_id: str
    user_principal_name: str | None
    how: str = "direct"
    app_role_ids: list[str] = field(default_factory=lambda: [ROLE])
    default_access_only: bool = False
    enabled: bool | None = True
    in_scope: Any = True
    attributes: dict[str, Any] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    nested_via: list[str] = field(default_factory=list)
    found: bool = True


@dataclass
class Model:
    """Mirrors the fields of ingest.preflight.source.SourceModel that the findings read."""

    service_principal_id: str = SP
    job_id: str = JOB
    matching_attributes: list[tuple[str, str | None]] = field(default_factory=lambda: [("externalId", "[objectId]")])
    required_target_attributes: list[str] = field(default_factory=lambda: ["userName", "name.familyName"])


def user(uid: str, name: str, *, family: str | None = "Doe", email: str | None = None, **kw) -> User:
    upn = kw.pop("upn", f"{uid}@contoso.com")
    attrs = {"userName": name, "externalId": uid, "name.familyName": family,
             'emails[type eq "work"].value': email if email is not None else upn, "active": "True"}
    attrs.update(kw.pop("attributes", {}))
    return User(uid, upn, attributes=attrs, **kw)


def users() -> list[User]:
    return [
        user("u1", "Alice@contoso.com"),
        user("u2", "alice@contoso.com", how="group", groups=["g1"]),  # collides with u1 case-insensitively
        user("u3", "bob@contoso.com", family=""),  # required name.familyName empty
        user("u4", "carol@contoso.com", email="carol@gmail.com"),  # personal email
        user("u5", "dave@contoso.com", app_role_ids=[DEFAULT_ACCESS], default_access_only=True),
        user("u6", "erin@contoso.com", how="nested_only", nested_via=["g1"], app_role_ids=[]),
        user("u7", "frank@contoso.com", enabled=False),  # disabled; its account in the app is active
        user("u8", "gina@contoso.com"),  # the app holds GINA@contoso.com under another externalId
        user("u9", "hank@contoso.com"),  # matched in the app by externalId: nothing to say
        user("u10", "ivy@contoso.com", attributes={"userName": Unknown("function Foo is not supported")}),
        user("u11", "alice@contoso.com", in_scope=False),  # out of scope: collides with nobody
        user("u12", "kim@contoso.com", enabled=False, app_role_ids=[DEFAULT_ACCESS], default_access_only=True),
        user("u13", "lee@contoso.com", in_scope=Unknown("department: not read")),  # clean otherwise
        user("u14", "max@contoso.com", found=False),  # assigned, but Graph has no such user
        user("u16", "oli@contoso.com", enabled=False),  # disabled: its account keeps the userName u17 wants
        user("u17", "OLI@contoso.com", how="group", groups=["g1"]),
        user("u18", "pat@contoso.com", enabled=False),  # two disabled namesakes: nobody is created, no conflict
        user("u19", "pat@contoso.com", enabled=False),
        user("u15", "nia@contoso.com", upn="nia_gmail.com#EXT#@contoso.onmicrosoft.com",
             email="nia@contoso.com"),  # a guest: its UPN domain is not a work domain to learn from
    ]


def targets() -> list[TargetAccount]:
    return [
        TargetAccount("t7", "frank@contoso.com", "u7", True, ("frank@contoso.com",)),
        TargetAccount("t8", "GINA@contoso.com", "someone-else", True, ("gina@contoso.com",)),
        TargetAccount("t9", "hank@contoso.com", "u9", True, ("hank@contoso.com",)),
        TargetAccount("o1", "gone@contoso.com", "deleted-user", True, ("gone@contoso.com",)),
        TargetAccount("o2", "manual@contoso.com", None, False, ()),
    ]


# (kind, identity) -> unknown? : the planted problems.
PLANTED: dict[tuple[str, str], bool] = {
    ("duplicate_user_name", "u1"): False,
    ("duplicate_user_name", "u2"): False,
    ("duplicate_user_name", "u16"): False,
    ("duplicate_user_name", "u17"): False,
    ("target_conflict", "u8"): False,
    ("missing_required", "u3"): False,
    ("missing_required", "u10"): True,  # userName cannot be evaluated: said, not guessed
    ("non_work_email", "u4"): False,
    ("default_access_only", "u5"): False,
    ("nested_group_only", "u6"): False,
    ("disabled_but_active_in_target", "u7"): False,
    ("orphan", "target:t8"): False,  # its externalId matches no assigned user: an orphan as well as a conflict
    ("orphan", "target:o1"): False,
    ("orphan", "target:o2"): False,
}
PLANTED_SOURCE_ONLY = {k: v for k, v in PLANTED.items()
                       if k[0] not in ("target_conflict", "disabled_but_active_in_target", "orphan")}
