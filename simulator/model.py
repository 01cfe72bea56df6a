"""Plain data classes shared by the generator modules, and the public Simulation result."""

from __future__ import annotations

from dataclasses import dataclass, field

EMAIL = 'emails[type eq "work"].value'
# SCIM attributes Entra maps for users, in the order modifiedProperties lists them.
MAPPED = ["userName", "active", EMAIL, "displayName", "name.givenName", "name.familyName",
          "department", "title"]
SKIP_CATEGORIES = ["default_access", "not_assigned", "out_of_scope", "inactive", "no_change"]


@dataclass
class User:
    """A source (Entra) user; `attrs` holds its SCIM-mapped values as strings at period start."""

    idx: int
    object_id: str
    attrs: dict[str, str]
    join_at: int | None = None  # None: exists before the period starts
    leave_at: int | None = None

    @property
    def upn(self) -> str:
        return self.attrs["userName"]


@dataclass
class Change:
    """One change to a source user, at `at` ticks; kind: join, update, touch, leave, purge."""

    at: int
    user: int
    kind: str
    attrs: dict[str, str] = field(default_factory=dict)


@dataclass
class Violation:
    """A planned constraint violation (duplicate userName or non-work email)."""

    kind: str
    app: str
    user: int
    user_name: str
    email_domain: str | None
    conflicts_with: str | None
    preexisting_target: bool
    fix_at: int | None  # when the admin fixes it (None: stays open)


@dataclass
class Episode:
    """The credential-expiry episode on one app: token expires at `expires_at`, renewed at `renewed_at`."""

    expires_at: int
    renewed_at: int


@dataclass
class App:
    """An enterprise app (service principal) with its provisioning job and its SCIM server."""

    key: str
    name: str
    style: str  # gallery | custom
    sp_id: str
    app_id: str
    target_system_id: str
    template_id: str
    job_id: str
    scim_tenant: str
    client_ip: str
    credential_id: str
    renewed_credential_id: str
    roster: dict[int, str] = field(default_factory=dict)  # user idx -> "user" or a skip category
    preexisting: dict[str, tuple[str, str]] = field(default_factory=dict)  # lower name -> (id, name)
    releases: list[tuple[int, str]] = field(default_factory=list)  # (at, lower name) admin frees
    missed: list[tuple[int, int]] = field(default_factory=list)  # (not before, cycles to skip)
    throttles: list[int] = field(default_factory=list)  # first write after each time gets 429
    contradictions: list[tuple[int, str]] = field(default_factory=list)  # (not before, kind)
    episode: Episode | None = None
    # Alert stories (story.add_alert_incidents): the job stays Active but runs no cycle in [from, until).
    stall: tuple[int, int] | None = None
    # ... and the app refuses every update (400 invalidValue) in [from, until).
    reject: tuple[int, int] | None = None


@dataclass
class Simulation:
    """Everything `generate` produces; `write` turns it into files."""

    events: list[dict]
    job_snapshots: list[dict]
    scim_records: list[dict]
    truth: dict
    directory_audits: list[dict] = field(default_factory=list)  # /auditLogs/directoryAudits (issue 24)
    directory: dict = field(default_factory=dict)  # users, groups, assignments, job schemas (issue 26, preflight)
