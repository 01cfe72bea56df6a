"""Lake errors for people: a one-line message and an exit code (ingest/exitcodes.py) for each way a copy fails,
with no secret in it (no account key, SAS token, client secret or connection string)."""

from __future__ import annotations

import os
import re

from ingest import exitcodes
from ingest.lake.layout import check_tenant, is_remote

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_QUERY = re.compile(r"\?[^\s'\"]*")  # a URL's query string (a SAS token lives there)
_SECRET_KEYS = re.compile(r"(?i)(accountkey|sharedaccesssignature|sig|client_secret|access_key|sas_key|"
                          r"sas_token)=[^;&\s]*")
SECRET_VARIABLES = ("AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_ACCESS_KEY", "AZURE_STORAGE_MASTER_KEY",
                    "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_KEY", "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_TOKEN",
                    "AZURE_STORAGE_CONNECTION_STRING", "AZURE_CLIENT_SECRET", "AZURE_STORAGE_CLIENT_SECRET")
URL_FORMS = "a local directory, az://CONTAINER/PATH, abfss://CONTAINER@ACCOUNT.dfs.core.windows.net/PATH"


class LakeUsageError(ValueError):
    """A lake URL or tenant that cannot be used (exit 2)."""


def scrub(text: str) -> str:
    """``text`` on one line, without colours, URL query strings, ``key=secret`` pairs or the value of any
    secret-bearing variable set in the environment."""
    text = _ANSI.sub("", text)
    for name in SECRET_VARIABLES:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "REDACTED")
    text = _SECRET_KEYS.sub(lambda m: f"{m.group(1)}=REDACTED", _QUERY.sub("?REDACTED", text))
    parts = [p.strip(" ↳") for p in text.splitlines()]
    return ": ".join(p for p in parts if p)[:600]


def check_lake_url(url: str) -> str:
    """``url`` if it names a lake provlens can write (a local path or Azure), else LakeUsageError."""
    if not url or not url.strip():
        raise LakeUsageError(f"no lake given: pass {URL_FORMS}")
    if "://" in url and not is_remote(url):
        scheme = url.split("://", 1)[0]
        raise LakeUsageError(f"lake URL scheme {scheme!r} is not supported: use {URL_FORMS}")
    if is_remote(url):
        if "?" in url or ";" in url:
            raise LakeUsageError("the lake URL must not carry credentials (a SAS token or key): set AZURE_STORAGE_* "
                                 "variables instead (see README, Copying stores into a lake)")
        rest = url.split("://", 1)[1]
        if not rest.split("/", 1)[0].split("@", 1)[0]:
            raise LakeUsageError(f"lake URL {url} names no container: use {URL_FORMS}")
    return url


def check_lake_tenant(tenant: str) -> str:
    try:
        return check_tenant(tenant)
    except ValueError as exc:
        raise LakeUsageError(str(exc)) from None


def explain(exc: BaseException, lake_url: str) -> tuple[int, str]:
    """The exit code and one line for a failed copy to ``lake_url``."""
    if isinstance(exc, LakeUsageError):
        return exitcodes.USAGE, str(exc)
    if type(exc).__name__ == "CommitFailedError":  # deltalake.exceptions; retried (ingest/lake/copy.py) until now
        return exitcodes.FAILED, (f"another writer kept committing to the same tenant's days of the lake "
                                  f"{scrub(lake_url)}; run one copy per tenant at a time, then re-run")
    detail = scrub(str(exc) or type(exc).__name__)
    low = detail.lower()
    where = scrub(lake_url)
    if any(s in low for s in ("403", "authorization", "authentication", "forbidden", "401", "credential", "access key",
                              "signature")):
        return exitcodes.AUTH, (f"the lake storage {where} refused the credentials ({detail}); check the "
                                "AZURE_STORAGE_* variables")
    if any(s in low for s in ("connect", "dns", "timed out", "timeout", "unreachable", "error sending request",
                              "name or service not known", "containernotfound", "404")):
        return exitcodes.UNREACHABLE, f"cannot reach the lake storage {where} ({detail})"
    if isinstance(exc, OSError) and not is_remote(lake_url):
        return exitcodes.FAILED, f"cannot write the lake {where} ({detail})"
    return exitcodes.FAILED, f"the copy to the lake {where} failed ({type(exc).__name__}: {detail})"
