"""The tenant and its story: users, the two apps, who is special, and every source-side change."""

from __future__ import annotations

import random
from dataclasses import dataclass

from . import names
from .clock import DAY, HOUR, MINUTE, SECOND, floor_day, to_datetime
from .ids import IdFactory
from .model import EMAIL, App, Change, Episode, User, Violation

MIN_USERS = 25


@dataclass
class Story:
    tenant_id: str
    users: list[User]
    apps: list[App]
    changes: list[Change]
    violations: list[Violation]


def work_time(rng: random.Random, lo: int, hi: int) -> int:
    """A time in [lo, hi), weighted towards weekday working hours (07-18 UTC)."""
    t = lo
    for _ in range(30):
        t = rng.randrange(lo, hi)
        hour = (t % DAY) // HOUR
        p = 1.0 if 7 <= hour < 18 else 0.1
        if to_datetime(t).weekday() >= 5:
            p *= 0.25
        if rng.random() < p:
            return t
    return t


class _People:
    """Makes users with unique UPNs."""

    def __init__(self, rng: random.Random, ids: IdFactory) -> None:
        self.rng, self.ids, self.used = rng, ids, set()

    def make(self, idx: int) -> User:
        rng = self.rng
        given, family = rng.choice(names.FIRST_NAMES), rng.choice(names.LAST_NAMES)
        domain = names.ORG_DOMAINS[0] if rng.random() < 0.75 else names.ORG_DOMAINS[1]
        base = f"{names.fold(given)}.{names.fold(family)}"
        local, n = base, 1
        while f"{local}@{domain}" in self.used:
            n += 1
            local = f"{base}{n}"
        upn = f"{local}@{domain}"
        self.used.add(upn)
        attrs = {
            "userName": upn, "active": "True", EMAIL: upn, "displayName": f"{given} {family}",
            "name.givenName": given, "name.familyName": family,
            "department": rng.choice(names.DEPARTMENTS), "title": rng.choice(names.TITLES),
        }
        return User(idx=idx, object_id=self.ids.guid(), attrs=attrs)


def _apps(rng: random.Random, ids: IdFactory, tenant_id: str) -> list[App]:
    compact = tenant_id.replace("-", "")
    out = []
    for key, name, style, template, scim_tenant in (
        ("prod", "Leapsome", "gallery", "Leapsome", "leapsome-prod"),
        ("sandbox", "Leapsome Sandbox (custom SCIM)", "custom", "scim", "leapsome-sandbox"),
    ):
        out.append(App(
            key=key, name=name, style=style, sp_id=ids.guid(), app_id=ids.guid(),
            target_system_id=ids.guid(), template_id=template,
            job_id=f"{template}.{compact}.{ids.guid()}", scim_tenant=scim_tenant,
            client_ip=f"20.190.{rng.randrange(128, 160)}.{rng.randrange(2, 250)}",
            credential_id="cred-" + ids.hex(4), renewed_credential_id="cred-" + ids.hex(4),
        ))
    return out


def build_story(rng: random.Random, ids: IdFactory, n_users: int, start: int, end: int) -> Story:
    if n_users < MIN_USERS:
        raise ValueError(f"users must be at least {MIN_USERS} to hold every condition")
    period = end - start
    days = period / DAY
    tenant_id = ids.guid()
    prod, sandbox = apps = _apps(rng, ids, tenant_id)
    people = _People(rng, ids)
    users = [people.make(i) for i in range(n_users)]
    pool = list(range(n_users))
    rng.shuffle(pool)
    changes: list[Change] = []
    violations: list[Violation] = []

    def at(lo: float, hi: float) -> int:
        return work_time(rng, start + int(period * lo), start + int(period * hi))

    def fix_time(join_at: int | None) -> int:
        base = join_at if join_at is not None else start
        return base + int((end - base) * rng.uniform(0.15, 0.35))

    def join(user: User, when: int) -> None:
        user.join_at = when
        changes.append(Change(when, user.idx, "join", dict(user.attrs)))

    # Skip categories (each gets changes so it shows up in several cycles).
    for app, counts in ((prod, (max(2, round(n_users * 0.05)), 1 + n_users // 100,
                                1 + n_users // 100, 1 + n_users // 150)),
                        (sandbox, (1, 1, 1, 1))):
        for category, count in zip(("default_access", "not_assigned", "out_of_scope", "inactive"),
                                   counts):
            for _ in range(count):
                u = users[pool.pop()]
                app.roster[u.idx] = category
                if category == "inactive":
                    u.attrs["active"] = "False"
                touches = 2 + rng.randrange(2) if category == "default_access" else 1
                for _ in range(touches):
                    changes.append(Change(at(0.05, 0.97), u.idx, "update"))

    # Duplicate userName (a): a hand-made target account differs only in case.
    for app, count, offset in ((prod, max(2, n_users // 50), 0), (sandbox, max(1, n_users // 100), 1)):
        for i in range(count):
            u = users[pool.pop()]
            app.roster[u.idx] = "user"
            if i:
                join(u, at(0.05, 0.45))
            local, domain = u.upn.split("@")
            existing = f"{names.capitalised(local)}@{domain}"
            app.preexisting[existing.lower()] = (ids.target_id(), existing)
            fix_at = fix_time(u.join_at) if (i + offset) % 2 == 0 else None
            if fix_at is not None:
                app.releases.append((fix_at, existing.lower()))
            violations.append(Violation("duplicate_user_name", app.key, u.idx, u.upn, None, existing,
                                        True, fix_at))

    # Duplicate userName (b): a leaver's account stays (disabled); a namesake joiner gets the UPN.
    for app, resolved in ((prod, True), (sandbox, False)):
        a, b = users[pool.pop()], users[pool.pop()]
        app.roster[a.idx] = app.roster[b.idx] = "user"
        a.leave_at = at(0.08, 0.18)
        changes.append(Change(a.leave_at, a.idx, "leave", {"active": "False"}))
        people.used.discard(b.upn)
        b.attrs = dict(a.attrs, department=rng.choice(names.DEPARTMENTS))
        join(b, at(0.28, 0.40))
        fix_at = fix_time(b.join_at) if resolved else None
        if fix_at is not None:
            app.releases.append((fix_at, a.upn.lower()))
        violations.append(Violation("duplicate_user_name", app.key, b.idx, b.upn, None, a.upn,
                                    False, fix_at))

    # Personal (non-work) email addresses: refused with 400 invalidValue.
    for app, count, offset in ((prod, max(2, n_users // 60), 0), (sandbox, 1, 0)):
        for i in range(count):
            u = users[pool.pop()]
            app.roster[u.idx] = "user"
            local = u.upn.split("@")[0]
            domain = names.PERSONAL_DOMAINS[(i + len(violations)) % len(names.PERSONAL_DOMAINS)]
            u.attrs[EMAIL] = f"{local}@{domain}"
            if i:
                join(u, at(0.05, 0.45))
            fix_at = fix_time(u.join_at) if (i + offset) % 2 == 0 else None
            if fix_at is not None:
                changes.append(Change(fix_at, u.idx, "update", {EMAIL: u.upn}))
            violations.append(Violation("non_work_email", app.key, u.idx, u.upn, domain, None,
                                        False, fix_at))

    # Ordinary joiners and leavers.
    plain = list(pool)
    joiners = [users[pool.pop()] for _ in range(max(2, round(n_users * 0.04)))]
    for u in joiners:
        prod.roster[u.idx] = "user"
        if rng.random() < 0.25:
            sandbox.roster[u.idx] = "user"
        join(u, at(0.05, 0.95))
    leavers = [users[pool.pop()] for _ in range(max(2, round(n_users * 0.03)))]
    for i, u in enumerate(leavers):
        u.leave_at = at(0.1, 0.8)
        changes.append(Change(u.leave_at, u.idx, "leave", {"active": "False"}))
        purge_at = u.leave_at + int(period * rng.uniform(0.05, 0.15))
        if (i == 0 or rng.random() < 0.4) and purge_at < end - HOUR:
            changes.append(Change(purge_at, u.idx, "purge"))
    remaining = set(pool) | {u.idx for u in leavers}
    plain = [i for i in plain if i in remaining]
    for idx in plain:
        prod.roster[idx] = "user"
    want = max(2, round(n_users * 0.25) - len(sandbox.roster))
    for idx in sorted(rng.sample(plain, min(want, len(plain)))):
        sandbox.roster[idx] = "user"

    # Movers (attribute updates) and "touches" (source changes that need no export).
    def alive(u: User, t: int) -> bool:
        return (u.join_at is None or u.join_at < t) and (u.leave_at is None or u.leave_at > t)

    _schedule_incidents(rng, apps, start, end)
    for _ in range(round(n_users * days * 0.85)):
        t = at(0.01, 0.995)
        for _ in range(10):
            u = users[rng.randrange(n_users)]
            if alive(u, t):
                changes.append(Change(t, u.idx, "update"))
                break
    _add_touches(rng, users, plain, changes, prod.episode, max(3, round(n_users * days / 150)), at, alive)

    changes = [c for c in changes if start + 30 * MINUTE <= c.at < end]
    changes.sort(key=lambda c: (c.at, c.user))
    _fill_updates(rng, users, changes)
    return Story(tenant_id, users, apps, changes, violations)


def _add_touches(rng: random.Random, users: list[User], plain: list[int], changes: list[Change],
                 episode: Episode | None, count: int, at, alive) -> None:
    """Source changes that need no export (-> RedundantExport skips): kept away from the user's other
    changes and from the credential episode, so that they are not merged into another export."""
    busy: dict[int, list[int]] = {}
    for c in changes:
        busy.setdefault(c.user, []).append(c.at)
    for _ in range(count):
        for _ in range(50):
            t, u = at(0.01, 0.97), users[rng.choice(plain)]
            if episode and episode.expires_at - 2 * HOUR < t < episode.renewed_at + 2 * HOUR:
                continue
            if alive(u, t) and all(abs(t - other) > 2 * HOUR for other in busy.get(u.idx, [])):
                changes.append(Change(t, u.idx, "touch"))
                busy.setdefault(u.idx, []).append(t)
                break


def _fill_updates(rng: random.Random, users: list[User], changes: list[Change]) -> None:
    """Give each update a concrete attribute change, in time order, from the running source state."""
    state = {u.idx: dict(u.attrs) for u in users}
    for c in changes:
        s = state[c.user]
        if c.kind == "update" and not c.attrs:
            pick = rng.random()
            if pick < 0.45:
                c.attrs = {"department": rng.choice([d for d in names.DEPARTMENTS if d != s["department"]])}
            elif pick < 0.85:
                c.attrs = {"title": rng.choice([t for t in names.TITLES if t != s["title"]])}
            else:
                family = rng.choice([f for f in names.LAST_NAMES if f != s["name.familyName"]])
                c.attrs = {"name.familyName": family, "displayName": f"{s['name.givenName']} {family}"}
        s.update(c.attrs)


def _schedule_incidents(rng: random.Random, apps: list[App], start: int, end: int) -> None:
    """Missed cycles, 429 throttling, contradictions and the credential-expiry episode."""
    prod, sandbox = apps
    period = end - start

    def late_morning(frac: float) -> int:
        t = floor_day(start + int(period * frac)) + 11 * HOUR
        return t if start + HOUR < t < end - 3 * HOUR else start + int(period * frac)

    prod.missed.append((late_morning(0.25), 1))
    sandbox.missed.append((late_morning(0.8), 2))
    days = max(1, period // DAY)
    prod.throttles = sorted(start + int(period * rng.uniform(0.1, 0.9)) for _ in range(max(1, days // 3)))
    prod.throttles.insert(0, start + int(period * 0.2))
    sandbox.throttles = [start + int(period * 0.3)]
    prod.contradictions = [(start + int(period * 0.25), "entra_success_scim_error"),
                           (start + int(period * 0.3), "entra_failure_scim_success")]
    if period >= 2 * DAY:
        expires = floor_day(start + int(period * 0.6)) + 9 * HOUR + rng.randrange(HOUR)
        if not start + period * 0.3 < expires < end - 6 * HOUR:
            expires = start + int(period * 0.6)
        delay = min(rng.randrange(26 * HOUR, 44 * HOUR), int((end - expires) * 0.55))
        prod.episode = Episode(expires, expires + delay)


def add_alert_incidents(story: Story, start: int, end: int) -> None:
    """Alert stories (issue 24), on top of the usual ones; deterministic (no random draw), so every other condition
    of the seed stays as it was:

    - at 25% of the period a department rename reaches half of the production app's users, and the app refuses the
      new value (400 invalidValue) for 8 hours: the escrow grows towards Entra's quarantine thresholds while the job
      stays Active, the failure rate spikes;
    - at 70% the sandbox job stalls for 6 hours (Active, not quarantined, no cycle: the ``quiet`` rule's "stopped").
    """
    prod, sandbox = story.apps
    rename_at = start + int((end - start) * 0.25)
    prod.reject = (rename_at, rename_at + 8 * HOUR)
    users = sorted(idx for idx, role in prod.roster.items() if role == "user")
    for n, idx in enumerate(users[::2]):
        story.changes.append(Change(rename_at + n * SECOND, idx, "update", {"department": "Platform Engineering"}))
    story.changes.sort(key=lambda c: (c.at, c.user))
    stall_from = start + int((end - start) * 0.7)
    sandbox.stall = (stall_from, stall_from + 6 * HOUR)


def alert_story_other_client(requests: list[dict], start: int, end: int) -> list[dict]:
    """The alert story's HRIS client (simulator/scim.py) is switched off at 75% of the period: the unlogged writes
    alert must resolve a day after its last write."""
    from .clock import iso_ms
    from .scim import HRIS_AGENT

    cutoff = iso_ms(start + int((end - start) * 0.75))
    return [r for r in requests if r["user_agent"] != HRIS_AGENT or r["ts"] < cutoff]
