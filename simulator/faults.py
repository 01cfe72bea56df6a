"""Switchable faults for the fake Graph server: a small plan of ``N:kind[:key=value,...]`` entries.

``N`` is the 1-based number of the request to ``/auditLogs/provisioning`` (retries count too) at which the
fault fires; ``repeat=K`` makes it fire on K consecutive requests. Kinds:

- ``429``, ``500``, ``502``, ``503``, ``504``: that status, ``retry-after=`` a literal header value
  (``2``, ``2.128``, ``200``), ``date+S`` (an HTTP date S seconds ahead) or ``none``; values are
  percent-decoded, so ``retry-after=30%2C120`` sends ``Retry-After: 30,120``;
- ``slow`` (``delay=S`` then a normal page), ``empty`` (an empty page that still has a nextLink),
  ``truncated`` (a 200 whose JSON body is cut off), ``html`` (an HTML error page, ``status=502``),
  ``reset`` (the connection is dropped without an answer);
- ``401`` (one rejected token), ``expire`` (the token is rejected from then on), ``403`` (a tenant
  without Entra ID P1/P2), ``404``, ``skiptoken`` (the next request carrying a ``$skiptoken`` gets 400);
- ``403-permission`` (Graph's ``Authorization_RequestDenied`` "Insufficient privileges to complete the
  operation.": the app lacks a permission, e.g. AuditLog.Read.All, or Synchronization.Read.All with ``on=jobs``)
  and ``403-licence`` (``Authentication_RequestFromNonPremiumTenantOrB2CTenant`` "Neither tenant is B2C or tenant
  doesn't have premium license": no Entra ID P1/P2); both take ``code=`` and ``message=`` to send another
  reading of the error (e.g. ``code=Authentication_MSGraphPermissionMissing``, or ``code=Forbidden,message=``).

``on=jobs`` aims a fault at ``/servicePrincipals/{id}/synchronization/jobs`` instead, where ``N`` numbers the
requests to that endpoint (``401``, ``403``, ``403-permission``, ``403-licence``, ``404``, ``429``, ``5xx``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from urllib.parse import unquote

KINDS = {"429", "500", "502", "503", "504", "slow", "empty", "truncated", "html", "reset", "401", "expire",
         "403", "404", "skiptoken", "403-permission", "403-licence"}
ENDPOINTS = ("provisioning", "jobs")  # what ``on=`` may name


@dataclass
class Fault:
    at: int
    kind: str
    params: dict[str, str] = field(default_factory=dict)
    repeat: int = 1
    fired: int = 0

    def covers(self, n: int) -> bool:
        return self.at <= n < self.at + self.repeat

    @property
    def endpoint(self) -> str:
        return self.params.get("on", "provisioning")


def parse_fault(spec: str) -> Fault:
    """``3:429:retry-after=2.128`` -> Fault(at=3, kind="429", params={"retry-after": "2.128"})."""
    parts = spec.strip().split(":", 2)
    if len(parts) < 2 or not parts[0].strip().isdigit():
        raise ValueError(f"fault {spec!r}: expected N:kind[:key=value,...]")
    kind = parts[1].strip().lower()
    if kind not in KINDS:
        raise ValueError(f"fault {spec!r}: unknown kind {kind!r} (one of {', '.join(sorted(KINDS))})")
    params: dict[str, str] = {}
    if len(parts) == 3 and parts[2].strip():
        for item in parts[2].split(","):
            key, _, value = item.partition("=")
            params[key.strip().lower()] = unquote(value.strip())  # "," separates params: send it as %2C
    repeat = int(params.pop("repeat", "1"))
    if params.get("on", "provisioning") not in ENDPOINTS:
        raise ValueError(f"fault {spec!r}: on= one of {', '.join(ENDPOINTS)}")
    return Fault(at=int(parts[0]), kind=kind, params=params, repeat=max(1, repeat))


class FaultPlan:
    """The faults to inject, thread-safe; :meth:`next_request` numbers requests and says what to do."""

    def __init__(self, specs: list[str] | None = None):
        self.lock = threading.Lock()
        self.faults: list[Fault] = []
        self.count = 0
        self.jobs_count = 0
        self.token_expired = False
        self.pending_skiptoken = 0
        self.set(specs or [])

    def set(self, specs: list[str]) -> None:
        faults = [parse_fault(s) for s in specs]
        with self.lock:
            self.faults = faults
            self.count = 0
            self.jobs_count = 0
            self.token_expired = False
            self.pending_skiptoken = 0

    def next_request(self, has_skiptoken: bool) -> Fault | None:
        """Count one provisioning request and return the fault that fires on it, if any."""
        with self.lock:
            self.count += 1
            hit = next((f for f in self.faults if f.covers(self.count) and f.endpoint == "provisioning"), None)
            if hit is not None and hit.kind == "skiptoken":
                self.pending_skiptoken += 1
                hit = None
            if hit is not None and hit.kind == "expire":
                self.token_expired = True
            if hit is None and has_skiptoken and self.pending_skiptoken:
                self.pending_skiptoken -= 1
                return Fault(at=self.count, kind="skiptoken")
            if hit is not None:
                hit.fired += 1
            return hit

    def next_jobs_request(self) -> Fault | None:
        """Count one ``/synchronization/jobs`` request and return the ``on=jobs`` fault that fires on it, if any."""
        with self.lock:
            self.jobs_count += 1
            hit = next((f for f in self.faults if f.endpoint == "jobs" and f.covers(self.jobs_count)), None)
            if hit is not None:
                hit.fired += 1
            return hit
