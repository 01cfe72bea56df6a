"""``python -m ingest doctor`` (``provlens doctor``): check a setup before a scheduled run finds the problem.

Each check is a small function in :data:`CHECKS`, run in order; each prints one line: ``ok`` with what it
found, or ``FAIL`` with the exact fix, or ``skip`` (``skipped: ...`` when there is nothing to check, ``not run:
needs <check>`` when a check it depends on did not pass). The Graph checks go through the same msgraph-sdk
session as ``ingest graph`` (:class:`ingest.graph.client.GraphSession`). No secret (client secret, token,
certificate password) is printed: every line passes :meth:`Doctor.redact`.

Exit code: 0 when no check failed; otherwise the code (:mod:`ingest.exitcodes`) of the first check that failed.
Checks that were not run are counted apart in the summary, never as passed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ingest import exitcodes
from ingest.config import DEFAULT_CONFIG, DEFAULT_DB, ConfigError, check_db_setting, load_toml

OK, FAIL, SKIP = "ok", "fail", "skip"
MOUNTINFO = "/proc/self/mountinfo"
# Filesystems on which DuckDB's file lock is not reliable (SMB/CIFS: Azure Files; NFS; 9p; FUSE mounts such as
# blobfuse or sshfs); "fuse.*" is matched by prefix.
NETWORK_FS = ("cifs", "smb3", "smbfs", "nfs", "nfs4", "9p")
DEFAULT_MIN_FREE_MB = 1024
DOCTOR_MAX_WAIT = 10.0  # seconds of retry waits per Graph request (the pull's 900 s is for a backfill)
DOCTOR_TIMEOUT = 15.0
# the Graph options that only a pull uses: accepted (one option builder for both commands), not shown
PULL_ONLY = ("since", "until", "overlap", "slice_length", "commit_seconds", "top", "log_format")
GRAPH_FLAGS = ("tenant_id", "client_id", "service_principal_ids", "auth", "certificate", "cloud", "graph_url")
GRAPH_ENV = ("PROVLENS_GRAPH_TOKEN", "PROVLENS_TENANT_ID", "AZURE_TENANT_ID", "PROVLENS_CLIENT_ID",
             "PROVLENS_GRAPH_URL", "PROVLENS_SERVICE_PRINCIPAL_IDS")
AUDIT_PERMISSION = "AuditLog.Read.All"
JOBS_PERMISSION = "Synchronization.Read.All"
CONSENT = ("in Entra admin center > App registrations > the app > API permissions: Add a permission > Microsoft "
           "Graph > Application permissions > {perm}, then Grant admin consent")
LICENCE_FIX = ("the tenant needs a Microsoft Entra ID P1 or P2 licence for provisioning logs through Graph (free and "
               "B2C tenants get 403): assign one in the Microsoft 365 admin center > Billing, then run doctor again")


@dataclass
class Result:
    """One check's outcome; ``detail`` is what was found (ok), the fix (fail) or why it did not run (skip)."""

    name: str
    title: str
    status: str
    detail: str
    exit_code: int = exitcodes.OK

    def text(self) -> str:
        label = {OK: "ok", FAIL: "FAIL", SKIP: "skip"}[self.status]
        return f"{label:<5} {self.title}: {self.detail}"

    def json(self) -> str:
        return json.dumps({"check": self.name, "title": self.title, "status": self.status, "detail": self.detail,
                           "exit_code": self.exit_code})


@dataclass
class Check:
    name: str
    title: str
    run: Callable[[Doctor], tuple[str, str]]
    exit_code: int  # when it fails
    needs: tuple[str, ...] = ()


# ----------------------------------------------------------------------------- shared state
@dataclass
class Doctor:
    """What the checks share: the arguments, the resolved configuration and the Graph answers so far."""

    args: argparse.Namespace
    mountinfo: str = MOUNTINFO
    min_free_mb: float = DEFAULT_MIN_FREE_MB
    config: dict = field(default_factory=dict)
    config_file: str | None = None
    db: str = DEFAULT_DB
    graph_section: dict | None = None
    settings: Any = None  # PullSettings
    graph_wanted: bool = True
    auth_provider: Any = None
    secrets: set[str] = field(default_factory=set)
    probe: dict | None = None  # /auditLogs/provisioning: {"status", "doc"} or {"status", "code", "error"}
    jobs: dict[str, dict] = field(default_factory=dict)  # service principal -> its jobs answer
    results: dict[str, Result] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from ingest.graph.auth import CERT_PASSWORD_ENV, SECRET_ENV, TOKEN_ENV

        for name in (*SECRET_ENV, TOKEN_ENV, CERT_PASSWORD_ENV):
            if os.environ.get(name):
                self.secrets.add(os.environ[name])
                if os.environ[name].strip():
                    self.secrets.add(os.environ[name].strip())

    def redact(self, text: str) -> str:
        from ingest.graph.log import redact_url_credentials

        for secret in sorted(self.secrets, key=len, reverse=True):
            if len(secret) >= 4:
                text = text.replace(secret, "<redacted>")
        return redact_url_credentials(text)

    # ---- Graph: each request through the msgraph-sdk session of the pull, with a short retry budget
    def _graph(self, make: Callable[[Any], Any]) -> dict:
        from ingest.graph.client import GraphError, GraphSession
        from ingest.graph.log import RunLog
        from ingest.graph.pacing import Pacer, RetryPolicy

        args = self.args
        policy = RetryPolicy(max_wait=float(args.max_wait) if args.max_wait is not None else DOCTOR_MAX_WAIT,
                             max_attempts=3, backoff=0.5)

        async def go() -> dict:
            async with GraphSession(self.auth_provider, self.settings.base_url, pacer=Pacer(self.settings.rate),
                                    policy=policy, log=RunLog("text", stream=io.StringIO()),
                                    timeout=float(args.timeout) if args.timeout else DOCTOR_TIMEOUT) as session:
                try:
                    return {"status": 200, "doc": await make(session)}
                except GraphError as exc:
                    return {"status": exc.status, "code": exc.code, "error": exc}
        try:
            return asyncio.run(go())
        except Exception as exc:  # noqa: BLE001 - e.g. AuthConfigError: said as one line by the check
            return {"status": None, "code": None, "error": exc}

    def provisioning_probe(self) -> dict:
        if self.probe is None:
            async def first_page(session):
                return await session.get_json(session.provisioning_request(filter=None, top=1),
                                              "the provisioning log (/auditLogs/provisioning)")
            self.probe = self._graph(first_page)
        return self.probe

    def jobs_answer(self, sp: str) -> dict:
        if sp not in self.jobs:
            from ingest.graph.jobs import fetch_job_snapshots

            async def jobs(session):
                return await fetch_job_snapshots(session, sp)
            self.jobs[sp] = self._graph(jobs)
        return self.jobs[sp]

    def job_targets(self) -> list[str]:
        """The service principals to ask for jobs: those configured, else the app of an event on the first page."""
        if self.settings.service_principal_ids:
            return list(self.settings.service_principal_ids)
        doc = (self.probe or {}).get("doc") or {}
        for event in doc.get("value") or []:
            sp = (event.get("servicePrincipal") or {}).get("id") if isinstance(event, dict) else None
            if sp:
                return [sp]
        return []


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:400] if lines else type(exc).__name__


# ----------------------------------------------------------------------------- 403: which one
_PERMISSION_NAME = re.compile(r"\b[A-Z][A-Za-z]+(?:\.[A-Z][A-Za-z]+){2,}\b")  # AuditLog.Read.All


def permission_named(message: str | None, default: str) -> str:
    """The permission Graph's message names (``Authentication_MSGraphPermissionMissing`` says which), else ours."""
    found = _PERMISSION_NAME.search(message or "")
    return found.group(0) if found else default


def classify_403(code: str | None, message: str | None) -> str:
    """``licence``, ``permission`` or ``unknown``. The licence code is documented for sign-ins, not for this API
    ([U]), and some tenants get a bare 403: so the code and the words both count, and an unknown 403 gets both
    fixes."""
    c, m = (code or "").lower(), (message or "").lower()
    if "nonpremium" in c or "b2c" in c or any(w in m for w in ("premium", "licen", "sku", " p1", " p2")):
        return "licence"
    if c in ("authorization_requestdenied", "authentication_msgraphpermissionmissing", "accessdenied") or \
            "privilege" in m or "permission" in m:
        return "permission"
    return "unknown"


def _said(answer: dict) -> str:
    code, _ = _graph_words(answer)
    return f"HTTP {answer.get('status')}" + (f" {code}" if code else "")


def _graph_words(answer: dict) -> tuple[str | None, str | None]:
    """Graph's error code and message from a failed answer (GraphError keeps the code; the message is in its text)."""
    err = answer.get("error")
    text = str(err or "")
    code = answer.get("code")
    m = re.search(r"\(\d{3} \(([^:]*): (.*?)\)\)", text) or re.search(r"\(\d{3} \(([^:]*): (.*?)\)", text)
    message = m.group(2) if m else None
    return code or (m.group(1) if m else None), message


# ----------------------------------------------------------------------------- the checks
def check_config(doc: Doctor) -> tuple[str, str]:
    """Which config file, which environment variables (names only), which database, which Graph settings."""
    from ingest.graph.command import settings_from

    args = doc.args
    explicit = args.config or os.environ.get("PROVLENS_CONFIG")
    where = "--config" if args.config else ("PROVLENS_CONFIG" if explicit else None)
    doc.config_file = explicit or (DEFAULT_CONFIG if Path(DEFAULT_CONFIG).exists() else None)
    try:
        doc.config = load_toml(args.config)
    except ConfigError as exc:
        return FAIL, f"{exc}: fix the file or point --config / PROVLENS_CONFIG at a valid provlens.toml"
    if args.db:
        db_from = "--db"
    elif os.environ.get("PROVLENS_DB"):
        db_from = "PROVLENS_DB"
    elif doc.config.get("db") or doc.config.get("store", {}).get("db"):
        db_from = doc.config_file or "provlens.toml"
    else:
        db_from = "default"
    doc.db = args.db or os.environ.get("PROVLENS_DB") or doc.config.get("db") or \
        doc.config.get("store", {}).get("db") or DEFAULT_DB
    try:
        check_db_setting(doc.db)
    except ConfigError as exc:
        return FAIL, f"the database from {db_from}: {exc}"
    sources = doc.config.get("sources")
    if sources is not None:
        from ingest.run import configured_sources

        try:
            configured_sources(doc.config)
        except ConfigError as exc:
            return FAIL, f"{doc.config_file}: {exc}"
    graph_sources = [s for s in sources or [] if s.get("type") == "graph"]
    if isinstance(doc.config.get("graph"), dict):
        doc.graph_section, graph_from = doc.config["graph"], "[graph]"
    elif graph_sources:
        doc.graph_section = graph_sources[0]
        graph_from = "the first [[sources]] of type graph" + (f" (of {len(graph_sources)})"
                                                               if len(graph_sources) > 1 else "")
    else:
        doc.graph_section, graph_from = {}, "flags and environment"
    flags = [f for f in GRAPH_FLAGS if getattr(args, f, None)]
    env_graph = [v for v in GRAPH_ENV if os.environ.get(v)]
    doc.graph_wanted = bool(flags or env_graph or doc.config.get("graph") or graph_sources or sources is None)
    try:
        doc.settings = settings_from(args, doc.graph_section, doc.db)
    except ConfigError as exc:
        return FAIL, f"{exc} (Graph settings from {graph_from}): fix the flag, variable or provlens.toml value"
    env = sorted(n for n in os.environ if n.startswith(("PROVLENS_", "AZURE_")) and os.environ[n])
    file_text = f"file {doc.config_file} ({where})" if where else \
        (f"file {doc.config_file}" if doc.config_file else "no provlens.toml (defaults)")
    graph = f"Graph from {graph_from}, cloud {doc.settings.auth.cloud.name}" if doc.graph_wanted \
        else "no Graph source configured"
    return OK, (f"{file_text}; environment variables set: {', '.join(env) or 'none'} (values not shown); "
                f"database {doc.db} (from {db_from}); {graph}")


def _graph_skipped(doc: Doctor) -> tuple[str, str] | None:
    if not doc.graph_wanted:
        return SKIP, "skipped: no Graph source configured (no [graph] table, [[sources]] of type graph or Graph flag)"
    return None


def _jwt_claims(token: str) -> dict | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


def check_credential(doc: Doctor) -> tuple[str, str]:
    """A token is obtained (from PROVLENS_GRAPH_TOKEN or the credential's token endpoint); its value is never shown."""
    skipped = _graph_skipped(doc)
    if skipped:
        return skipped
    from ingest.graph.auth import TOKEN_ENV, AuthConfigError, build_auth_provider, build_credential, resolve_method

    auth = doc.settings.auth
    method = resolve_method(auth)
    if method == "token":
        token = (os.environ.get(TOKEN_ENV) or "").strip()
        if token.lower().startswith("bearer "):
            token = token[7:].strip()
        if not token:
            return FAIL, f"--auth token needs {TOKEN_ENV} in the environment (it is not set or empty)"
        doc.secrets.add(token)
        exp = (_jwt_claims(token) or {}).get("exp")
        if isinstance(exp, (int, float)) and exp < datetime.now(timezone.utc).timestamp():
            when = datetime.fromtimestamp(exp, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            return FAIL, f"{TOKEN_ENV} expired at {when}: get a new token (they last about an hour)"
        doc.auth_provider, _ = build_auth_provider(auth)
        return OK, f"a bearer token from {TOKEN_ENV} (value not shown)"
    try:
        credential = build_credential(auth, method)
    except AuthConfigError as exc:
        return FAIL, str(exc)
    import logging

    quiet = logging.getLogger("azure.identity")  # its own multi-line warning would repeat this line's reason
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        access = credential.get_token(auth.cloud.scope)
    except Exception as exc:  # noqa: BLE001 - azure-identity: ClientAuthenticationError, CredentialUnavailableError
        fix = {"secret": "check --tenant-id, --client-id and the client secret (expired? App registrations > the "
                         "app > Certificates & secrets), and --cloud",
               "certificate": "check --tenant-id, --client-id, the certificate (uploaded to the app registration? "
                              "expired?) and PROVLENS_CERTIFICATE_PASSWORD",
               "managed-identity": "run where a managed identity is assigned, or pass --client-id of the "
                                   "user-assigned identity",
               "cli": "run `az login --tenant <tenant>` first",
               }.get(method, "set PROVLENS_CLIENT_SECRET with --tenant-id/--client-id, or --certificate, or "
                             "PROVLENS_GRAPH_TOKEN, or sign in with a managed identity / az login")
        return FAIL, f"no token from the {method} credential ({type(exc).__name__}: {_first_line(exc)}): {fix}"
    finally:
        quiet.setLevel(level)
    doc.secrets.add(access.token)
    doc.auth_provider, _ = build_auth_provider(auth, credential=credential)
    return OK, (f"a token for {auth.cloud.scope} from the {method} credential at {auth.cloud.authority} "
                "(value not shown)")


def check_reachability(doc: Doctor) -> tuple[str, str]:
    """Graph answers at the chosen cloud's host (any HTTP answer counts; 401/403 are the next checks' business)."""
    skipped = _graph_skipped(doc)
    if skipped:
        return skipped
    s = doc.settings
    url = s.base_url
    overridden = url != s.auth.cloud.base_url
    where = f"{url} ({'--graph-url, ' if overridden else ''}cloud {s.auth.cloud.name})"
    from ingest.graph.client import GraphUnavailable

    answer = doc.provisioning_probe()
    status, err = answer.get("status"), answer.get("error")
    if status is None:
        return FAIL, (f"no answer from {where}: {_first_line(err)}; check --cloud/--graph-url, DNS, the proxy "
                      "(HTTPS_PROXY) and the firewall (outbound 443 to the Graph host)")
    if isinstance(err, GraphUnavailable):  # answered, but only with 429/5xx past the retry budget
        return FAIL, (f"{where} kept failing (HTTP {status}): {_first_line(err)}; run doctor again later (Graph's "
                      "service health: Microsoft 365 admin center > Health)")
    if status == 404:
        return FAIL, (f"{where} answered 404 for /auditLogs/provisioning: the base URL must be the Graph root "
                      "ending in /v1.0 or /beta (e.g. https://graph.microsoft.com/v1.0)")
    return OK, f"{where} answered (HTTP {status})"


def check_token_accepted(doc: Doctor) -> tuple[str, str]:
    answer = doc.provisioning_probe()
    if answer.get("status") == 401:
        code, message = _graph_words(answer)
        said = f" (401 {code or ''}: {message or ''})".replace(" : )", ")")
        return FAIL, (f"Graph rejected the token{said}: it is expired, or for another tenant or cloud: check "
                      "--tenant-id, --client-id, --cloud and the secret or certificate; a PROVLENS_GRAPH_TOKEN "
                      "lasts about an hour")
    return OK, "Graph accepted the token"


def check_audit_permission(doc: Doctor) -> tuple[str, str]:
    answer = doc.provisioning_probe()
    status = answer.get("status")
    code, message = _graph_words(answer)
    said = f"403 {code or 'Forbidden'}" + (f": {message}" if message else "")
    if status == 200:
        return OK, f"Graph served the provisioning log (permission {AUDIT_PERMISSION} granted)"
    if status == 403:
        kind = classify_403(code, message)
        if kind == "permission":
            perm = permission_named(message, AUDIT_PERMISSION)
            also = " (and Directory.Read.All)" if perm == AUDIT_PERMISSION else ""
            return FAIL, (f"add the Microsoft Graph application permission {perm}{also} {CONSENT.format(perm=perm)} "
                          f"(delegated sign-in: a user in the Reports Reader role or higher) (Graph said {said})")
        if kind == "licence":
            roles = (_jwt_claims(next((t for t in doc.secrets if t.count(".") == 2), "")) or {}).get("roles")
            if isinstance(roles, list):
                if AUDIT_PERMISSION in roles:
                    return OK, f"the token's roles include {AUDIT_PERMISSION} (Graph answered with the licence error)"
                return FAIL, (f"the token's roles lack {AUDIT_PERMISSION}: add it "
                              f"{CONSENT.format(perm=AUDIT_PERMISSION)}")
            return SKIP, ("not run: Graph answered with the licence error before it said anything about "
                          f"{AUDIT_PERMISSION} (see the licence check); run doctor again once that is fixed")
        return FAIL, (f"Graph refused the provisioning log ({said}) without saying why: either add "
                      f"{AUDIT_PERMISSION} {CONSENT.format(perm=AUDIT_PERMISSION)}, or {LICENCE_FIX}")
    if status is None:
        return FAIL, f"Graph did not answer the provisioning log request: {_first_line(answer.get('error'))}"
    return FAIL, f"Graph answered the provisioning log request with {_said(answer)}: {_first_line(answer['error'])}"


def check_licence(doc: Doctor) -> tuple[str, str]:
    answer = doc.provisioning_probe()
    status = answer.get("status")
    code, message = _graph_words(answer)
    if status == 200:
        return OK, "Graph served the provisioning log (Entra ID P1/P2)"
    if status == 403:
        kind = classify_403(code, message)
        if kind == "licence":
            said = f"403 {code or 'Forbidden'}" + (f": {message}" if message else "")
            return FAIL, f"{LICENCE_FIX} (Graph said {said})"
        return SKIP, f"not run: needs {AUDIT_PERMISSION}"
    return SKIP, f"not run: needs {AUDIT_PERMISSION}"


def check_service_principals(doc: Doctor) -> tuple[str, str]:
    ids = doc.settings.service_principal_ids
    if not ids:
        return SKIP, ("skipped: no service principal ids configured (--service-principal-id / service_principal_ids;"
                      " the pull reads every app's events)")
    found, problems, unknown = [], [], []
    for sp in ids:
        answer = doc.jobs_answer(sp)
        status = answer.get("status")
        if status == 200:
            jobs = answer["doc"]
            if not jobs:
                problems.append(f"{sp} has no provisioning job: set up provisioning on that enterprise app "
                                "(Enterprise applications > the app > Provisioning), or drop the id")
            else:
                kinds = ", ".join(sorted({f"{(j['job'].get('templateId') or '?')} "
                                          f"{((j['job'].get('status') or {}).get('code') or '?')}" for j in jobs}))
                found.append(f"{sp}: {len(jobs)} job(s) ({kinds})")
        elif status == 404:
            problems.append(f"{sp} is not a service principal in this tenant: use the enterprise application's "
                            "Object ID (Enterprise applications > the app > Overview), not the app registration's "
                            "Application (client) ID")
        elif status == 403:
            unknown.append(sp)
        else:
            problems.append(f"{sp}: Graph answered {_said(answer)}: {_first_line(answer.get('error'))}")
    if problems:
        return FAIL, "; ".join(problems)
    if unknown:
        return SKIP, f"not run: needs {JOBS_PERMISSION} (the next check) to read the jobs of {', '.join(unknown)}"
    return OK, "; ".join(found)


def check_jobs_permission(doc: Doctor) -> tuple[str, str]:
    if not doc.settings.jobs:
        return SKIP, "skipped: job status is switched off (--no-jobs / jobs = false)"
    targets = doc.job_targets()
    if not targets:
        return SKIP, ("skipped: no service principal to ask (none configured, and the provisioning log has no "
                      "event yet)")
    for sp in targets:
        answer = doc.jobs_answer(sp)
        status = answer.get("status")
        if status == 403:
            code, message = _graph_words(answer)
            said = f"403 {code or 'Forbidden'}" + (f": {message}" if message else "")
            perm = permission_named(message, JOBS_PERMISSION)
            return FAIL, (f"add the Microsoft Graph application permission {perm} "
                          f"{CONSENT.format(perm=perm)}, or pull without job status (--no-jobs / "
                          f"jobs = false) (the jobs of {sp}: Graph said {said})")
        if status == 401:
            return FAIL, f"Graph rejected the token for the jobs of {sp} (401): see the token check's fix"
        if status is None or status >= 500:
            return FAIL, f"the jobs of {sp} could not be read: {_first_line(answer.get('error'))}"
    readable = [sp for sp in targets if doc.jobs_answer(sp).get("status") == 200]
    if not readable:
        return SKIP, "not run: needs service principals (none of them could be found)"
    return OK, f"job status readable ({', '.join(readable)})"


# ---- the database
def _existing_ancestor(path: str) -> str:
    p = os.path.dirname(os.path.abspath(path))
    while p and not os.path.exists(p):
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    return p


def check_db_writable(doc: Doctor) -> tuple[str, str]:
    db = doc.db
    folder = os.path.dirname(os.path.abspath(db))
    if os.path.isdir(db):
        return FAIL, f"{db} is a directory: give --db / PROVLENS_DB a file name, e.g. {db}/provlens.duckdb"
    base = _existing_ancestor(db)
    if not os.path.isdir(base):
        return FAIL, f"{base} is not a directory, so {folder} cannot be created: choose another --db / PROVLENS_DB"
    try:
        fd, probe = tempfile.mkstemp(dir=base, prefix=".provlens-doctor-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return FAIL, (f"cannot write in {base} ({exc.strerror or exc}): the ingest creates the database, its .wal "
                      "and temp files there: give the user running provlens write access to it, or choose "
                      "another --db / PROVLENS_DB")
    if os.path.exists(db):
        try:
            with open(db, "r+b"):
                pass
        except OSError as exc:
            return FAIL, (f"cannot open {db} for writing ({exc.strerror or exc}): give the user running provlens "
                          "write access to it")
        return OK, f"{db} exists and is writable"
    created = "" if base == folder else f" ({folder} will be created)"
    return OK, f"{db} does not exist yet; its folder is writable{created}"


def mount_of(path: str, mountinfo: str = MOUNTINFO) -> tuple[str, str, str] | None:
    """(mount point, filesystem type, source) of the mount holding ``path``, from a mountinfo file; None when the
    file cannot be read (not Linux)."""
    try:
        lines = Path(mountinfo).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    best: tuple[str, str, str] | None = None
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or not tail:
            continue
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        inside = target == point or target.startswith(point.rstrip("/") + "/") or point == "/"
        if inside and (best is None or len(point) >= len(best[0])):
            best = (point, tail[0], tail[1] if len(tail) > 1 else "")
    return best


def is_network_fs(fstype: str) -> bool:
    return fstype in NETWORK_FS or fstype.startswith("fuse.")


def check_db_local(doc: Doctor) -> tuple[str, str]:
    where = _existing_ancestor(doc.db) if not os.path.exists(doc.db) else doc.db
    mount = mount_of(where, doc.mountinfo)
    if mount is None:
        return SKIP, (f"skipped: cannot tell on this system ({sys.platform}; no {doc.mountinfo}) whether {doc.db} is "
                      "on a network share; keep it on a local disk (DuckDB's lock is not reliable on SMB/NFS)")
    point, fstype, source = mount
    if is_network_fs(fstype):
        return FAIL, (f"{doc.db} is on a network share ({fstype} {source} at {point}): DuckDB's file lock is not "
                      "reliable there; put the database on a local disk (Azure Container Apps / Kubernetes: a "
                      "disk volume, not Azure Files)")
    return OK, f"{doc.db} is on a local filesystem ({fstype} at {point})"


def check_disk_space(doc: Doctor) -> tuple[str, str]:
    base = _existing_ancestor(doc.db)
    free_mb = shutil.disk_usage(base).free / 1024 / 1024
    if free_mb < doc.min_free_mb:
        return FAIL, (f"only {free_mb:,.0f} MB free at {base} (at least {doc.min_free_mb:,.0f} MB wanted, "
                      "--min-free-mb): free space there, or move the database to a bigger disk")
    return OK, f"{free_mb:,.0f} MB free at {base} (at least {doc.min_free_mb:,.0f} MB wanted)"


# ---- SCIM trail, mappings, alert targets
def _scim_sources(doc: Doctor) -> list[dict]:
    return [s for s in doc.config.get("sources") or [] if isinstance(s, dict) and s.get("type") == "scim"]


def check_scim_paths(doc: Doctor) -> tuple[str, str]:
    """The paths of every ``[[sources]]`` table of type scim (what ``ingest run`` reads) expand and can be read."""
    from ingest.scim.filestate import expand_paths

    sources = _scim_sources(doc)
    if not sources:
        return SKIP, 'skipped: no [[sources]] with type = "scim" in the config'
    problems: list[str] = []
    readable = 0
    for s in sources:
        paths = s.get("paths") or ([s["path"]] if s.get("path") else [])
        paths = [paths] if isinstance(paths, str) else list(paths)
        if not paths:
            problems.append('a scim source has no paths = ["..."]')
            continue
        files, missing, _ = expand_paths(paths, follow_symlinks=bool(s.get("follow_symlinks", False)))
        problems += [f"{m} matches no file" for m in missing]
        for f in files:
            try:
                with open(f, "rb") as fh:
                    fh.read(1)
                readable += 1
            except OSError as exc:
                problems.append(f"{f} cannot be read ({exc.strerror or exc})")
    if problems:
        return FAIL, ("; ".join(problems) + ": fix paths in the scim [[sources]], or let the user running provlens "
                      "read them")
    return OK, f"{readable} file(s) readable in {len(sources)} scim source(s)"


def check_mappings(doc: Doctor) -> tuple[str, str]:
    from ingest.scim.mapping import MappingError, load_mapping

    mapped = [s for s in _scim_sources(doc) if s.get("mapping")]
    if not mapped:
        return SKIP, "skipped: no scim source has a mapping"
    problems, names = [], []
    for s in mapped:
        name = s["mapping"] if isinstance(s["mapping"], str) else "an inline [sources.mapping] table"
        try:
            load_mapping(s["mapping"])
            names.append(name)
        except MappingError as exc:
            problems.append(str(exc))
    if problems:
        return FAIL, "; ".join(problems) + " (see examples/mappings/ and the README's mapping section)"
    return OK, f"{', '.join(names)} valid"


def check_alert_targets(doc: Doctor) -> tuple[str, str]:
    """The ``[alerts]`` settings and each ``[[alerts.targets]]``: its variable is set and Apprise understands its URL
    (never printed). ``--send-test`` sends each a test message (``ingest.alerts.notify.send_test``)."""
    from ingest.alerts import delivery
    from ingest.alerts.targets import load_alerts_config

    try:
        settings = load_alerts_config(doc.config)
    except ConfigError as exc:
        return FAIL, doc.redact(str(exc))
    if not settings.targets:
        return SKIP, "skipped: no [[alerts.targets]] in the config (alerts are recorded, not sent)"
    bad = [t for t in settings.targets if not delivery.valid_url(t.url())]
    if bad:
        return FAIL, (f"alert target {bad[0].name!r}: the value of {bad[0].url_env} is not an Apprise URL "
                      "(see README, Get alerted)")
    names = ", ".join(repr(t.name) for t in settings.targets)
    if getattr(doc.args, "send_test", False):
        from ingest.alerts.notify import send_test

        failed = [t.name for t in settings.targets if send_test(doc.config, t.name) != exitcodes.OK]
        if failed:
            return FAIL, f"the test message to {failed[0]!r} was not delivered (the line above says why)"
        return OK, f"{len(settings.targets)} target(s) ({names}): a test message reached each"
    return OK, f"{len(settings.targets)} target(s) ({names}): each URL is set and understood (--send-test sends one)"


GRAPH = ("config", "credential", "reachability", "token")
CHECKS: list[Check] = [
    Check("config", "config", check_config, exitcodes.USAGE),
    Check("credential", "credential", check_credential, exitcodes.AUTH, ("config",)),
    Check("reachability", "Graph reachable", check_reachability, exitcodes.UNREACHABLE, ("credential",)),
    Check("token", "token accepted", check_token_accepted, exitcodes.AUTH, ("reachability",)),
    Check("auditlog", AUDIT_PERMISSION, check_audit_permission, exitcodes.AUTH, GRAPH),
    Check("licence", "Entra ID P1/P2 licence", check_licence, exitcodes.AUTH, GRAPH),
    Check("service_principals", "service principals", check_service_principals, exitcodes.USAGE, GRAPH),
    Check("jobs", JOBS_PERMISSION, check_jobs_permission, exitcodes.AUTH, GRAPH),
    Check("db_writable", "database writable", check_db_writable, exitcodes.DATABASE, ("config",)),
    Check("db_local", "database on a local disk", check_db_local, exitcodes.DATABASE, ("config",)),
    Check("disk", "free disk space", check_disk_space, exitcodes.DATABASE, ("config",)),
    Check("scim_paths", "SCIM trail paths", check_scim_paths, exitcodes.USAGE, ("config",)),
    Check("mappings", "mapping files", check_mappings, exitcodes.USAGE, ("config",)),
    Check("alert_targets", "alert targets", check_alert_targets, exitcodes.USAGE, ("config",)),
]


def run_checks(doc: Doctor, checks: list[Check] | None = None) -> list[Result]:
    """Run each check in order; one whose prerequisite did not pass is ``not run: needs <that check>``."""
    out: list[Result] = []
    for check in checks or CHECKS:
        blocker = next((doc.results[n] for n in check.needs if n in doc.results and doc.results[n].status != OK),
                       None)
        if blocker is not None and blocker.status == SKIP and blocker.detail.startswith("skipped:"):
            status, detail = SKIP, blocker.detail  # nothing to check there (e.g. no Graph source): the same here
        elif blocker is not None:
            status, detail = SKIP, f"not run: needs {blocker.title}"
        else:
            try:
                status, detail = check.run(doc)
            except Exception as exc:  # noqa: BLE001 - one line per check, never a traceback
                if os.environ.get("PROVLENS_DEBUG"):
                    raise
                status, detail = FAIL, f"{type(exc).__name__}: {_first_line(exc)}"
        result = Result(check.name, check.title, status, doc.redact(detail),
                        check.exit_code if status == FAIL else exitcodes.OK)
        doc.results[check.name] = result
        out.append(result)
    return out


def exit_code(results: list[Result]) -> int:
    """0 when nothing failed; else the code of the first check that failed."""
    return next((r.exit_code for r in results if r.status == FAIL), exitcodes.OK)


def summary(results: list[Result]) -> dict:
    counts = {s: sum(1 for r in results if r.status == s) for s in (OK, FAIL, SKIP)}
    return {"ok": counts[OK], "failed": counts[FAIL], "not_run": counts[SKIP], "exit_code": exit_code(results)}


# ----------------------------------------------------------------------------- command line
def add_doctor_arguments(p: argparse.ArgumentParser) -> None:
    from ingest.graph.command import add_graph_arguments

    add_graph_arguments(p)  # the same Graph options as `ingest graph`; the pull-only ones are accepted and ignored
    for action in p._actions:
        if action.dest in PULL_ONLY:
            action.help = "accepted so that an `ingest graph` command line works here; doctor ignores it"
    d = p.add_argument_group("doctor")
    d.add_argument("--format", choices=("text", "json"), default="text",
                   help="text: one line per check (default); json: one JSON object per line, then a summary")
    d.add_argument("--send-test", action="store_true",
                   help="send a test message to each alert target (default: only check them, send nothing)")
    d.add_argument("--min-free-mb", type=float, default=DEFAULT_MIN_FREE_MB,
                   help=f"free disk space wanted where the database is, in MB (default {DEFAULT_MIN_FREE_MB})")


def run_doctor(args: argparse.Namespace, *, mountinfo: str = MOUNTINFO, stream=None) -> int:
    """Run every check, print one line each and a summary; return the exit code. ``mountinfo`` is a parameter so
    tests can describe mounts that do not exist on the test machine (an SMB share)."""
    stream = stream or sys.stdout
    doc = Doctor(args, mountinfo=mountinfo, min_free_mb=float(getattr(args, "min_free_mb", DEFAULT_MIN_FREE_MB)))
    results = []
    for check in CHECKS:
        result = run_checks(doc, [check])[0]
        results.append(result)
        print(result.json() if args.format == "json" else result.text(), file=stream, flush=True)
    total = summary(results)
    if args.format == "json":
        print(json.dumps({"summary": total}), file=stream, flush=True)
    else:
        print(f"doctor: {total['ok']} ok, {total['failed']} failed, {total['not_run']} not run "
              f"(exit {total['exit_code']})", file=stream, flush=True)
    return total["exit_code"]


def cmd_doctor(args: argparse.Namespace) -> int:
    return run_doctor(args)
