"""The target side of preflight (issue 26, optional): every account of a SCIM server's ``/Users``, read page by page
(``startIndex``/``count``, RFC 7644 section 3.4.2.4) with a bearer token taken from an environment variable.

The token is never printed, logged or stored: errors name the variable, not its value, and the URL kept with a
preflight run has no credentials. Transient answers (429, 5xx, a dropped connection) are retried with tenacity.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import httpx
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

DEFAULT_TOKEN_ENV = "PROVLENS_SCIM_TOKEN"
PAGE_SIZE = 100
MAX_PAGES = 10_000  # a server that never stops paging is cut off


class TargetError(Exception):
    """The SCIM server could not be read; the message is one line, without the token."""


@dataclass(frozen=True)
class TargetAccount:
    id: str
    user_name: str | None
    external_id: str | None
    active: bool | None
    emails: tuple[str, ...] = field(default_factory=tuple)


def safe_url(url: str) -> str:
    """The URL without user info, query or fragment (what may be shown and stored)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def token_from_env(variable: str | None) -> str | None:
    """The bearer token from ``variable`` (default PROVLENS_SCIM_TOKEN); None when unset (no Authorization)."""
    value = os.environ.get(variable or DEFAULT_TOKEN_ENV)
    return value.strip() if value and value.strip() else None


def _account(resource: dict) -> TargetAccount | None:
    if not isinstance(resource, dict) or not resource.get("id"):
        return None
    emails = tuple(e["value"] for e in resource.get("emails") or []
                   if isinstance(e, dict) and isinstance(e.get("value"), str))
    active = resource.get("active")
    return TargetAccount(id=str(resource["id"]), user_name=resource.get("userName"),
                         external_id=resource.get("externalId"),
                         active=active if isinstance(active, bool) else None, emails=emails)


class _Transient(Exception):
    pass


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, (_Transient, httpx.TransportError))


def read_users(base_url: str, token: str | None, *, page_size: int = PAGE_SIZE, timeout: float = 30.0,
               attempts: int = 4) -> list[TargetAccount]:
    """Every account of ``<base_url>/Users``, in the server's order. Raises :class:`TargetError`."""
    url = base_url.rstrip("/") + "/Users"
    shown = safe_url(url)
    headers = {"Accept": "application/scim+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"

    @retry(retry=retry_if_exception(_transient), stop=stop_after_attempt(attempts),
           wait=wait_exponential(multiplier=0.2, max=5), reraise=True)
    def page(client: httpx.Client, start: int) -> dict:
        resp = client.get(url, params={"startIndex": start, "count": page_size}, headers=headers)
        if resp.status_code == 429 or resp.status_code >= 500:
            raise _Transient(f"HTTP {resp.status_code}")
        if resp.status_code in (401, 403):
            raise TargetError(f"{shown} answered {resp.status_code}: the SCIM token was refused (check the token in "
                              "the environment variable named by --scim-token-env)")
        if resp.status_code != 200:
            raise TargetError(f"{shown} answered HTTP {resp.status_code}")
        try:
            body = resp.json()
        except ValueError:
            raise TargetError(f"{shown} did not answer JSON") from None
        if not isinstance(body, dict):
            raise TargetError(f"{shown} did not answer a SCIM ListResponse")
        return body

    out: list[TargetAccount] = []
    start = 1
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            for _ in range(MAX_PAGES):
                body = page(client, start)
                resources = body.get("Resources") or []
                out += [a for a in map(_account, resources) if a is not None]
                total = body.get("totalResults")
                start += len(resources)
                if not resources or (isinstance(total, int) and start > total):
                    break
    except _Transient as exc:
        raise TargetError(f"{shown} kept failing ({exc}) after {attempts} attempts") from None
    except httpx.HTTPError as exc:
        raise TargetError(f"{shown} could not be reached ({type(exc).__name__})") from None
    return out
