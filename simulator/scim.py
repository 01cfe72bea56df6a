"""Builds scim-audit/1 records: Entra's requests, health probes and a second (HRIS) client."""

from __future__ import annotations

import random

from .clock import DAY, HOUR, MINUTE, iso_ms
from .ids import IdFactory
from .model import App

PREFIX = "/scim/v2"
ENTRA_AGENT = "Microsoft Azure AD SCIM provisioning 1.0.0"
HRIS_AGENT = "leapsome-hris-sync/2.3"
HRIS_IP = "10.20.4.17"
FIELDS = ["ts", "request_id", "method", "path", "query", "status", "duration_ms", "resource_type",
          "resource_id", "external_id", "user_name", "operation", "scim_type", "error_detail",
          "email_domains", "email_types", "active_after", "client_ip", "user_agent", "credential_id",
          "tenant"]


def record(ids: IdFactory, app: App, t: int, method: str, path: str, status: int, operation: str,
           *, client_ip: str, user_agent: str, credential_id: str, **fields) -> dict:
    """One audit record with every field present (null when not applicable)."""
    rec = dict.fromkeys(FIELDS)
    rec.update(ts=iso_ms(t), request_id=ids.request_id(), method=method, path=PREFIX + path,
               status=status, duration_ms=fields.pop("duration_ms", 10), resource_type="User",
               operation=operation, client_ip=client_ip, user_agent=user_agent,
               credential_id=credential_id, tenant=app.scim_tenant)
    rec.update(fields)
    return rec


def search_query(user_name: str) -> str:
    return f'filter=userName eq "{user_name}"'


def probes(rng: random.Random, ids: IdFactory, app: App, start: int, end: int) -> list[dict]:
    """Entra's health probes: a few a day, userName eq a random GUID; 401 while the token is expired."""
    out = []
    t = start + rng.randrange(2 * HOUR)
    while t < end:
        name = ids.guid()
        ep = app.episode
        bad = ep is not None and ep.expires_at <= t < ep.renewed_at
        cred = app.renewed_credential_id if ep is not None and t >= ep.renewed_at else app.credential_id
        status = 401 if bad else 200
        out.append(record(ids, app, t, "GET", "/Users", status, "probe", query=search_query(name),
                          user_name=name, duration_ms=rng.randrange(3, 20), client_ip=app.client_ip,
                          user_agent=ENTRA_AGENT, credential_id=cred,
                          error_detail="Invalid or expired token" if bad else None))
        t += rng.randrange(2 * HOUR, 5 * HOUR)
    return out


def hris_client(rng: random.Random, ids: IdFactory, app: App, accounts: list[list], start: int,
                end: int) -> list[dict]:
    """A second client (the HRIS sync) reading users and patching titles: writes Entra never logged.
    accounts: (created_at, deleted_at, resource_id, user_name) of users that exist in the target."""
    out = []
    credential = "cred-" + ids.hex(4)
    day = start
    first = True
    while day < end:
        n_get, n_patch = rng.randrange(2, 5), (2 if first else rng.randrange(0, 3))
        first = False
        for i in range(n_get + n_patch):
            t = day + 8 * HOUR + rng.randrange(9 * HOUR) + rng.randrange(MINUTE)
            live = [a for a in accounts if a[0] < t and (a[1] is None or a[1] > t)]
            if t >= end or not live:
                continue
            _, _, rid, name = rng.choice(live)
            common = dict(resource_id=rid, user_name=name, client_ip=HRIS_IP, user_agent=HRIS_AGENT,
                          credential_id=credential)
            if i < n_get:
                out.append(record(ids, app, t, "GET", f"/Users/{rid}", 200, "user.get",
                                  duration_ms=rng.randrange(4, 25), **common))
            else:
                out.append(record(ids, app, t, "PATCH", f"/Users/{rid}", 200, "user.patch",
                                  duration_ms=rng.randrange(15, 80), **common))
        day += DAY
    return out
