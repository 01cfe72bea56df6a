"""A fake Microsoft Graph on loopback serving the simulator's provisioning logs and job status.

    python -m simulator.graph_server --port 8765 --seed 7 --users 200 --days 14 [--fault 3:429:retry-after=2]
    python -m simulator.graph_server --port 8765 --data data/sim     # a directory written by simulator.write

Serves ``GET /v1.0/auditLogs/provisioning`` (also ``/beta``) with ``$filter`` (``activityDateTime``
eq/ne/gt/ge/lt/le, ``servicePrincipal/id eq``, ``contains``/``startswith``/``tolower``, ``and``/``or``/``not``,
parentheses), ``$top`` (max ``--max-top``, default 999; more -> 400), ``$orderby=activityDateTime asc|desc``,
``$skiptoken`` paging with absolute ``@odata.nextLink``s, a bearer-token check (``--token``), and
``GET /v1.0/servicePrincipals/{id}/synchronization/jobs`` (the latest snapshot of each job). Faults come
from a plan (:mod:`simulator.faults`, ``--fault``, or ``POST /_control/faults`` with a JSON list of specs);
``--throttle 5/10s`` adds Graph's per-tenant limit (429 with ``Retry-After``). ``provlens doctor``'s failing
branches use the faults ``401``, ``403-permission``, ``403-licence`` and ``404`` (``on=jobs`` for the jobs endpoint), an
unknown service principal id (404) and one without jobs (an empty list).
``GET /v1.0/auditLogs/directoryAudits`` serves the directory audit log (issue 24; :func:`_directory_audits_page`):
``$filter`` with ``loggedByService eq`` and ``activityDateTime`` ``eq``/``ge``/``le`` only (what Graph documents for
this API; ``gt``/``lt`` -> 400), ``$top``, ``$skiptoken`` paging, and the same fault kinds from a plan of its own
(``audit_faults``, numbered over its own requests).
The directory preflight reads (issue 26; :func:`_directory_route`, served when the data has a ``directory``, as
:func:`simulator.generate` makes): ``/servicePrincipals/{id}`` (``$select``), ``.../appRoleAssignedTo``,
``.../synchronization/jobs/{jobId}/schema``, ``/groups/{id}/members`` and ``/users`` (``$filter=id in (...)``) or
``/users/{id}``, paged with ``$skiptoken`` (at most ``directory_page`` entries a page).

In tests: ``with FakeGraphServer(GraphData.from_simulation(sim), token="t") as server: server.base_url``.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import math
import re
import signal
import socket
import struct
import sys
import threading
import time
from collections import deque
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import orjson

from .faults import Fault, FaultPlan

DEFAULT_TOKEN = "provlens-fake-graph-token"
DEFAULT_PAGE = 100  # page size when the client sends no $top
# fault kind -> Graph's 403 (code, message): a missing permission; a tenant without Entra ID P1/P2
DENIALS = {"403-permission": ("Authorization_RequestDenied", "Insufficient privileges to complete the operation."),
           "403-licence": ("Authentication_RequestFromNonPremiumTenantOrB2CTenant",
                           "Neither tenant is B2C or tenant doesn't have premium license")}


# ----------------------------------------------------------------------------- data
def _parse_time(value: str) -> datetime:
    t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


class GraphData:
    """Events sorted by time (pre-serialised) and the latest job snapshot per job."""

    def __init__(self, events: list[dict], job_snapshots: list[dict] | None = None,
                 directory_audits: list[dict] | None = None, directory: dict | None = None):
        self.directory = directory or {}  # users, groups, assignments, job schemas (simulator/directory.py)
        self.audits = sorted(directory_audits or [], key=lambda e: (_parse_time(e["activityDateTime"]), e["id"]))
        rows = sorted(events, key=lambda e: (_parse_time(e["activityDateTime"]), e["id"]))
        self.events = rows
        self.times = [_parse_time(e["activityDateTime"]) for e in rows]
        self.blobs = [orjson.dumps(e) for e in rows]
        self.sp_ids = [_path_value(e, "servicePrincipal/id") for e in rows]  # for the plain `eq` filter
        self._joined: tuple[bytes, list[int]] | None = None

        self.jobs: dict[str, dict[str, tuple[str, dict]]] = {}
        for snap in job_snapshots or []:
            sp = str(snap.get("servicePrincipalId", "")).lower()
            job = snap["job"]
            known = self.jobs.setdefault(sp, {}).get(job["id"])
            if known is None or _parse_time(snap["capturedAt"]) >= _parse_time(known[0]):
                self.jobs[sp][job["id"]] = (snap["capturedAt"], job)
        for e in rows:  # every service principal with events exists (no jobs is a valid answer)
            sp = e.get("servicePrincipal") or {}
            if isinstance(sp, dict) and sp.get("id"):
                self.jobs.setdefault(sp["id"].lower(), {})

    def joined(self) -> tuple[bytes, list[int]]:
        """All blobs joined with commas and where each starts (built on first use, after any test edits of
        ``blobs``): a page of consecutive events is one slice of it (B1: no per-page join of 999 blobs)."""
        if self._joined is None:
            starts, pos = [], 0
            for b in self.blobs:
                starts.append(pos)
                pos += len(b) + 1
            self._joined = (b",".join(self.blobs), starts)
        return self._joined

    def page_bytes(self, chunk: list[int] | range) -> bytes:
        """The events of ``chunk`` (indexes) serialised and comma-separated."""
        if len(chunk) > 1 and chunk[-1] - chunk[0] == len(chunk) - 1 and (
                isinstance(chunk, range) or all(b - a == 1 for a, b in zip(chunk, chunk[1:]))):
            joined, starts = self.joined()
            return joined[starts[chunk[0]]:starts[chunk[-1]] + len(self.blobs[chunk[-1]])]
        return b",".join(self.blobs[i] for i in chunk)

    @classmethod
    def from_simulation(cls, sim) -> GraphData:
        return cls(sim.events, sim.job_snapshots, getattr(sim, "directory_audits", None),
                   getattr(sim, "directory", None))

    @classmethod
    def from_dir(cls, path: str | Path) -> GraphData:
        root = Path(path)
        events_file = root / "events.ndjson"
        if events_file.exists():
            events = [_load_line(line) for line in events_file.read_bytes().splitlines() if line.strip()]
        else:
            events = []
            for page in sorted((root / "graph").glob("page-*.json")) or sorted(root.glob("*.json")):
                events.extend(json.loads(page.read_text(encoding="utf-8")).get("value", []))
        snaps_file = root / "job-snapshots.ndjson"
        snaps = [json.loads(line) for line in snaps_file.read_text(encoding="utf-8").splitlines() if line] \
            if snaps_file.exists() else []
        audits_file = root / "directory-audits.ndjson"
        audits = [json.loads(line) for line in audits_file.read_text(encoding="utf-8").splitlines() if line] \
            if audits_file.exists() else []
        directory_file = root / "directory.json"
        directory = json.loads(directory_file.read_text(encoding="utf-8")) if directory_file.exists() else None
        return cls(events, snaps, audits, directory)


def _load_line(line: bytes) -> dict:
    """orjson (fast for the bench's 200k-event files); json for what orjson refuses (integers > 64 bits)."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(line)


# ----------------------------------------------------------------------------- $filter
class FilterError(ValueError):
    pass


_TOKEN = re.compile(r"""\s*(?:
    (?P<dt>\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?)
  | (?P<str>'(?:[^']|'')*')
  | (?P<num>-?\d+(?:\.\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:/[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<punct>[(),])
)""", re.VERBOSE)
_COMPARE = {"eq", "ne", "gt", "ge", "lt", "le"}


def _tokens(text: str) -> list[tuple[str, object]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise FilterError(f"Invalid filter clause near {text[pos:pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup
        value = m.group(kind)
        if kind == "dt":
            out.append(("lit", _parse_time(value) if "T" in value else _parse_time(value + "T00:00:00Z")))
        elif kind == "str":
            out.append(("lit", value[1:-1].replace("''", "'")))
        elif kind == "num":
            out.append(("lit", float(value)))
        elif kind == "name" and value in ("true", "false", "null"):
            out.append(("lit", {"true": True, "false": False, "null": None}[value]))
        else:
            out.append((kind, value))
    return out


def _path_value(event: dict, path: str):
    value: object = event
    for part in path.split("/"):
        if isinstance(value, list):
            value = value[0] if value else None
        value = value.get(part) if isinstance(value, dict) else None
    return value


class _Parser:
    """Recursive descent over the token list; produces a predicate ``f(event) -> bool``."""

    def __init__(self, text: str):
        self.toks = _tokens(text)
        self.i = 0

    def peek(self, value: str | None = None):
        if self.i >= len(self.toks):
            return None
        tok = self.toks[self.i]
        if value is not None:
            return tok if tok[0] in ("name", "punct") and str(tok[1]).lower() == value else None
        return tok

    def take(self, value: str | None = None):
        tok = self.peek(value)
        if tok is None:
            raise FilterError("Invalid filter clause" + (f": expected {value!r}" if value else ": unexpected end"))
        self.i += 1
        return tok

    def parse(self):
        pred = self.expr()
        if self.i != len(self.toks):
            raise FilterError(f"Invalid filter clause: unexpected {self.toks[self.i][1]!r}")
        return pred

    def expr(self):
        left = self.term()
        while self.peek("or"):
            self.take()
            right = self.term()
            left = (lambda a, b: lambda e: a(e) or b(e))(left, right)
        return left

    def term(self):
        left = self.factor()
        while self.peek("and"):
            self.take()
            right = self.factor()
            left = (lambda a, b: lambda e: a(e) and b(e))(left, right)
        return left

    def factor(self):
        if self.peek("not"):
            self.take()
            inner = self.factor()
            return lambda e: not inner(e)
        if self.peek("("):
            self.take()
            inner = self.expr()
            self.take(")")
            if self.peek() and self.peek()[0] == "name" and str(self.peek()[1]).lower() in _COMPARE:
                raise FilterError("Invalid filter clause: comparison on a parenthesised expression")
            return inner
        left = self.operand()
        tok = self.peek()
        if tok and tok[0] == "name" and str(tok[1]).lower() in _COMPARE:
            op = str(self.take()[1]).lower()
            right = self.operand()
            return _compare(left, op, right)
        return lambda e: bool(left(e))

    def operand(self):
        tok = self.take()
        kind, value = tok
        if kind == "lit":
            return lambda e, v=value: v
        if kind == "name":
            name = str(value)
            if self.peek("("):
                return self.call(name.lower())
            if name.lower() in _COMPARE | {"and", "or", "not"}:
                raise FilterError(f"Invalid filter clause: unexpected {name!r}")
            return lambda e, p=name: _path_value(e, p)
        raise FilterError(f"Invalid filter clause: unexpected {value!r}")

    def call(self, fn: str):
        self.take("(")
        args = [self.operand_or_call()]
        while self.peek(","):
            self.take()
            args.append(self.operand_or_call())
        self.take(")")
        if fn in ("tolower", "toupper") and len(args) == 1:
            conv = str.lower if fn == "tolower" else str.upper
            return lambda e, a=args[0]: conv(a(e)) if isinstance(a(e), str) else a(e)
        if fn in ("contains", "startswith", "endswith") and len(args) == 2:
            op = {"contains": lambda s, t: t in s, "startswith": str.startswith, "endswith": str.endswith}[fn]
            return lambda e, a=args[0], b=args[1]: (isinstance(a(e), str) and isinstance(b(e), str)
                                                     and op(a(e), b(e)))
        raise FilterError(f"Invalid filter clause: unsupported function {fn}()")

    def operand_or_call(self):
        return self.operand()


def _compare(left, op: str, right):
    def coerce(a, b):
        if isinstance(a, datetime) and isinstance(b, str):
            return a, _parse_time(b)
        if isinstance(b, datetime) and isinstance(a, str):
            return _parse_time(a), b
        return a, b

    def pred(e):
        a, b = coerce(left(e), right(e))
        if op == "eq":
            return a == b
        if op == "ne":
            return a != b
        if a is None or b is None:
            return False
        try:
            return {"gt": a > b, "ge": a >= b, "lt": a < b, "le": a <= b}[op]
        except TypeError:
            return False
    return pred


def compile_filter(text: str | None):
    """The predicate ``f(event) -> bool``; for a plain filter (:func:`_plain_filter`) it also carries
    ``plain`` = (bounds, service principal id), which the server answers by bisection."""
    if not text or not text.strip():
        return lambda e: True
    pred = _Parser(text).parse()
    plain = _plain_filter(text)
    if plain is not None:
        pred.plain = plain
    return pred


# ----------------------------------------------------------------------------- HTTP
_BOUND = re.compile(r"activityDateTime\s+(gt|ge|lt|le)\s+([0-9][0-9T:.\-+Z]*)", re.IGNORECASE)


def _time_window(filter_text: str | None, n: int, times: list[datetime]) -> tuple[int, int]:
    """Index range of the time-sorted events that can match: a superset, narrowed only when the filter is a
    plain conjunction (no ``or``/``not``) so every time bound applies to every match. The predicate decides."""
    lo, hi = 0, n
    if not filter_text or re.search(r"\b(or|not)\b", filter_text, re.IGNORECASE):
        return lo, hi
    for op, value in _BOUND.findall(filter_text):
        try:
            t = _parse_time(value)
        except ValueError:
            return 0, n
        if op.lower() in ("gt", "ge"):
            lo = max(lo, bisect.bisect_left(times, t))
        else:
            hi = min(hi, bisect.bisect_right(times, t))
    return lo, max(lo, hi)


def _plain_filter(filter_text: str | None) -> tuple[list[tuple[str, datetime]], str | None] | None:
    """A filter made only of ``activityDateTime gt|ge|lt|le <time>`` and at most one ``servicePrincipal/id eq
    '<id>'``, joined by ``and`` (what the pull sends): its bounds and id, so the matches come from bisection
    on the sorted times instead of the predicate per event (B1). None for anything else (the predicate)."""
    if not filter_text or not filter_text.strip():
        return None
    bounds, sp = [], None
    for part in re.split(r"\s+and\s+", filter_text.strip(), flags=re.IGNORECASE):
        try:
            toks = _tokens(part)
        except (FilterError, ValueError):
            return None
        if len(toks) != 3 or toks[0][0] != "name" or toks[1][0] != "name" or toks[2][0] != "lit":
            return None
        name, op, value = toks[0][1], str(toks[1][1]).lower(), toks[2][1]
        if name == "activityDateTime" and op in ("gt", "ge", "lt", "le") and isinstance(value, datetime):
            bounds.append((op, value))
        elif name == "servicePrincipal/id" and op == "eq" and isinstance(value, str) and sp is None:
            sp = value
        else:
            return None
    return bounds, sp


def _error(code: str, message: str) -> bytes:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return orjson.dumps({"error": {"code": code, "message": message, "innerError": {
        "date": now, "request-id": hashlib.md5(now.encode()).hexdigest(), "client-request-id": ""}}})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY: the headers and the body go out in two writes; with Nagle's algorithm the body of a small
    # answer (an empty page, an error) waited for the client's delayed ACK, ~40 ms per request on keep-alive
    # connections (B1: 40 empty one-day slices cost 1.7 s). Graph itself has no such stall to imitate.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, fmt, *args):  # quiet: tests and CLI users read the request log instead
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/json; odata.metadata=minimal",
              headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.server.owner._log(self.path, status)

    def do_POST(self):
        if urlsplit(self.path).path != "/_control/faults":
            return self._send(404, _error("ResourceNotFound", "Unknown path"))
        length = int(self.headers.get("Content-Length") or 0)
        try:
            specs = json.loads(self.rfile.read(length) or b"[]")
            self.server.owner.faults.set(list(specs))
        except (ValueError, TypeError) as exc:
            return self._send(400, _error("BadRequest", str(exc)))
        return self._send(200, b'{"ok":true}')

    def do_GET(self):
        owner = self.server.owner
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        if len(parts) < 2 or parts[0] not in ("v1.0", "beta"):
            return self._send(404, _error("ResourceNotFound", f"Resource not found for the segment '{url.path}'."))
        fault = None
        audits = [p.lower() for p in parts[1:]] == ["auditlogs", "directoryaudits"]
        if parts[1:] == ["auditLogs", "provisioning"]:
            fault = owner.faults.next_request("$skiptoken" in query)
        elif audits:
            fault = owner.audit_faults.next_request("$skiptoken" in query)
        if not owner._token_ok(self.headers.get("Authorization")) or (fault and fault.kind == "401") \
                or owner.faults.token_expired:
            return self._send(401, _error("InvalidAuthenticationToken",
                                          "Access token has expired or is not yet valid."),
                              headers={"WWW-Authenticate": 'Bearer realm=""'})
        wait = owner._throttle()
        if wait is not None:
            return self._send(429, _error("TooManyRequests", "Please retry again later."),
                              headers={"Retry-After": str(max(1, math.ceil(wait)))})
        if fault is not None and self._fault(fault):
            return None
        if audits:
            return _directory_audits_page(self, parts[0], query, fault)
        if parts[1:] == ["auditLogs", "provisioning"]:
            if owner.latency:
                time.sleep(owner.latency)
            return self._provisioning(parts[0], query, empty=bool(fault and fault.kind == "empty"),
                                      truncated=bool(fault and fault.kind == "truncated"))
        if len(parts) == 5 and parts[1] == "servicePrincipals" and parts[3:] == ["synchronization", "jobs"]:
            return self._jobs_unless_fault(parts[0], parts[2])
        if _directory_route(self, parts, query):
            return None
        return self._send(404, _error("ResourceNotFound", f"Resource not found for the segment '{url.path}'."))

    # ------------------------------------------------------------------ faults
    def _fault(self, fault: Fault) -> bool:
        """Apply a fault; True when it produced the whole answer."""
        kind = fault.kind
        if kind in ("429", "500", "502", "503", "504"):
            headers = {}
            ra = fault.params.get("retry-after", "1" if kind == "429" else "none")
            if ra.startswith("date+"):
                when = datetime.now(timezone.utc) + timedelta(seconds=float(ra[5:]))
                headers["Retry-After"] = format_datetime(when, usegmt=True)
            elif ra != "none":
                headers["Retry-After"] = ra
            code = {"429": "TooManyRequests", "500": "InternalServerError", "502": "BadGateway",
                    "503": "ServiceUnavailable", "504": "GatewayTimeout"}[kind]
            self._send(int(kind), _error(code, "Please retry again later."), headers=headers)
            return True
        if kind == "slow":
            time.sleep(float(fault.params.get("delay", "1")))
            return False
        if kind == "html":
            status = int(fault.params.get("status", "502"))
            self._send(status, b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
                               b"<body><h1>Bad Gateway</h1><p>The proxy server received an invalid response."
                               b"</p></body></html>", ctype="text/html; charset=utf-8")
            return True
        if kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            self.server.owner._log(self.path, 0)
            return True
        if kind == "403":
            self._send(403, _error("Authentication_RequestFromNonPremiumTenantOrB2CTenant",
                                   "Tenant does not have a SKU required for this call."))
            return True
        if kind == "404":
            self._send(404, _error("ResourceNotFound", "Resource not found."))
            return True
        if kind == "skiptoken":
            self._send(400, _error("BadRequest", "Invalid $skiptoken: the token is expired or malformed."))
            return True
        if kind in DENIALS:
            self._deny(fault)
            return True
        return False  # empty / truncated are applied by the page writer

    # ------------------------------------------------------------------ denials and job faults (provlens doctor)
    def _deny(self, fault: Fault) -> None:
        """403 as Graph words it for a missing permission or a tenant without Entra ID P1/P2 (``code=`` and
        ``message=`` send another reading: the licence code is documented for sign-ins, not for this API)."""
        code, message = DENIALS[fault.kind]
        self._send(403, _error(fault.params.get("code", code), fault.params.get("message", message)))

    def _jobs_unless_fault(self, version: str, sp: str) -> None:
        """The jobs endpoint with the ``on=jobs`` faults applied (401, 403s, 404, 429, 5xx)."""
        fault = self.server.owner.faults.next_jobs_request()
        if fault is not None and fault.kind == "401":
            return self._send(401, _error("InvalidAuthenticationToken",
                                          "Access token has expired or is not yet valid."),
                              headers={"WWW-Authenticate": 'Bearer realm=""'})
        if fault is not None and fault.kind == "404":
            return self._send(404, _error("Request_ResourceNotFound", f"Resource '{sp}' does not exist or one of its "
                                          "queried reference-property objects are not present."))
        if fault is not None and self._fault(fault):
            return None
        return self._jobs(version, sp)

    # ------------------------------------------------------------------ endpoints
    def _provisioning(self, version: str, query: dict, *, empty: bool, truncated: bool) -> None:
        owner = self.server.owner
        try:
            top, state = _page_request(owner, query)
        except FilterError as exc:
            return self._send(400, _error("BadRequest", str(exc)))
        if state is not None:
            key, offset = state
        else:
            key, offset = (query.get("$filter", ""), query.get("$orderby", "")), 0
        try:
            matches = owner._matches(*key)
        except FilterError as exc:
            return self._send(400, _error("BadRequest", str(exc)))
        chunk = [] if empty else matches[offset:offset + top]
        next_offset = offset if empty else offset + len(chunk)
        base = f"http://{self.headers.get('Host') or owner.host_port}/{version}"
        page = b'{"@odata.context":"' + base.encode() + b'/$metadata#auditLogs/provisioning","value":[' \
            + owner.data.page_bytes(chunk) + b"]"
        if next_offset < len(matches):
            new_token = owner._new_token(key, next_offset)
            params = []
            if key[0]:
                params.append("$filter=" + quote(key[0], safe="/'(),:"))
            if key[1]:
                params.append("$orderby=" + quote(key[1], safe=""))
            params += [f"$top={top}", f"$skiptoken={new_token}"]
            link = f"{base}/auditLogs/provisioning?" + "&".join(params)
            page += b',"@odata.nextLink":' + orjson.dumps(link)
        page += b"}"
        if truncated:
            page = page[: max(1, len(page) // 2)]
        return self._send(200, page)

    def _jobs(self, version: str, sp: str) -> None:
        jobs = self.server.owner.data.jobs.get(sp.lower())
        if jobs is None:
            return self._send(404, _error("Request_ResourceNotFound",
                                          f"Resource '{sp}' does not exist or one of its queried reference-property "
                                          "objects are not present."))
        value = [job for _, job in sorted(jobs.values(), key=lambda cj: cj[1]["id"])]
        body = orjson.dumps({"@odata.context": f"http://{self.server.owner.host_port}/{version}/$metadata#"
                                               f"servicePrincipals('{sp}')/synchronization/jobs", "value": value})
        return self._send(200, body)


# ----------------------------------------------------------------------------- /auditLogs/directoryAudits (issue 24)
_AUDIT_TIME_OPS = {"eq", "ge", "le"}  # Graph's directoryAudit: activityDateTime supports $filter (eq, ge, le)
_AUDIT_OPERATORS = re.compile(r"\b(activityDateTime|loggedByService)\s+(eq|ne|gt|ge|lt|le)\b", re.IGNORECASE)


def _check_audit_filter(text: str) -> None:
    """Refuse what Graph documents as unsupported on this API: ``gt``/``lt``/``ne`` on activityDateTime, anything
    but ``eq`` on loggedByService."""
    for name, op in _AUDIT_OPERATORS.findall(text or ""):
        op = op.lower()
        if (name.lower() == "activitydatetime" and op not in _AUDIT_TIME_OPS) or \
                (name.lower() == "loggedbyservice" and op != "eq"):
            raise FilterError(f"Invalid filter clause: operator '{op}' is not supported for '{name}'.")


def _page_request(owner, query: dict) -> tuple[int, tuple | None]:
    """A paged list request's ``$top`` (checked against Graph's bounds) and the state its ``$skiptoken`` names (None
    on a first page); a bad value raises :class:`FilterError` with Graph's message (answered 400)."""
    try:
        top = int(query["$top"]) if "$top" in query else DEFAULT_PAGE
    except ValueError:
        raise FilterError(f"Invalid $top value '{query['$top']}'.") from None
    if top < 1 or top > owner.max_top:
        raise FilterError(f"Invalid page size specified: '{top}'. Must be between 1 and {owner.max_top} inclusive.")
    token = query.get("$skiptoken")
    if token is None:
        return top, None
    state = owner.tokens.get(token)
    if state is None:
        raise FilterError("Invalid $skiptoken: the token is expired or malformed.")
    return top, state


def _directory_audits_page(handler: _Handler, version: str, query: dict, fault: Fault | None) -> None:
    """One page of the directory audit log: filtered by the predicate, ``$top`` entries from the offset, an
    absolute ``@odata.nextLink`` with a ``$skiptoken`` while more remain (faults ``empty``/``truncated`` applied)."""
    owner = handler.server.owner
    try:
        top, state = _page_request(owner, query)
    except FilterError as exc:
        return handler._send(400, _error("BadRequest", str(exc)))
    if state is not None:
        (filter_text, _), offset = state
    else:
        filter_text, offset = query.get("$filter", ""), 0
    try:
        _check_audit_filter(filter_text)
        pred = compile_filter(filter_text)
    except FilterError as exc:
        return handler._send(400, _error("BadRequest", str(exc)))
    matches = [e for e in owner.data.audits if pred(e)]
    empty = bool(fault and fault.kind == "empty")
    chunk = [] if empty else matches[offset:offset + top]
    next_offset = offset if empty else offset + len(chunk)
    base = f"http://{handler.headers.get('Host') or owner.host_port}/{version}"
    page = {"@odata.context": f"{base}/$metadata#auditLogs/directoryAudits", "value": chunk}
    if next_offset < len(matches):
        new_token = owner._new_token((filter_text, ""), next_offset)
        params = (["$filter=" + quote(filter_text, safe="/'(),:")] if filter_text else []) + \
            [f"$top={top}", f"$skiptoken={new_token}"]
        page["@odata.nextLink"] = f"{base}/auditLogs/directoryAudits?" + "&".join(params)
    body = orjson.dumps(page)
    if fault and fault.kind == "truncated":
        body = body[: max(1, len(body) // 2)]
    return handler._send(200, body)


# ----------------------------------------------------------------------------- the directory (issue 26, preflight)
_ID_IN = re.compile(r"^\s*id\s+in\s*\((.*)\)\s*$", re.IGNORECASE | re.DOTALL)


def _not_found(handler: _Handler, what: str) -> None:
    handler._send(404, _error("Request_ResourceNotFound", f"Resource '{what}' does not exist or one of its queried "
                                                          "reference-property objects are not present."))


def _selected(obj: dict, query: dict) -> dict:
    """``$select``: the named properties (and ``id``); everything without it."""
    fields = [f.strip() for f in (query.get("$select") or "").split(",") if f.strip()]
    if not fields:
        return dict(obj)
    return {k: obj.get(k) for k in dict.fromkeys(["id", *fields])}


def _directory_page(handler: _Handler, version: str, path: str, rows: list[dict], query: dict, context: str) -> None:
    """One page of a directory collection: ``$top`` (at most the server's ``directory_page``) rows from the
    ``$skiptoken``'s offset, with an absolute ``@odata.nextLink`` while more remain."""
    owner = handler.server.owner
    try:
        top = int(query["$top"]) if "$top" in query else DEFAULT_PAGE
    except ValueError:
        return handler._send(400, _error("BadRequest", f"Invalid $top value '{query['$top']}'."))
    if top < 1 or top > 999:
        return handler._send(400, _error("BadRequest", f"Invalid page size specified: '{top}'."))
    top = min(top, owner.directory_page)
    offset = 0
    if "$skiptoken" in query:
        state = owner.tokens.get(query["$skiptoken"])
        if state is None or state[0][0] != path:
            return handler._send(400, _error("BadRequest", "Invalid $skiptoken: the token is expired or malformed."))
        offset = state[1]
    base = f"http://{handler.headers.get('Host') or owner.host_port}/{version}"
    page: dict = {"@odata.context": f"{base}/$metadata#{context}", "value": rows[offset:offset + top]}
    if offset + top < len(rows):
        params = [f"{k}={quote(v, safe='/,()')}" for k, v in query.items() if k not in ("$skiptoken", "$top")]
        params += [f"$top={top}", f"$skiptoken={owner._new_token((path, ''), offset + top)}"]
        page["@odata.nextLink"] = f"{base}{path}?" + "&".join(params)
    return handler._send(200, orjson.dumps(page))


def _member(directory: dict, member: dict) -> dict:
    if member["type"] == "group":
        group = directory["groups"][member["id"]]
        return {"@odata.type": "#microsoft.graph.group", "id": group["id"], "displayName": group["displayName"]}
    user = directory["users"][member["id"]]
    return {"@odata.type": "#microsoft.graph.user", "id": user["id"], "displayName": user["displayName"],
            "userPrincipalName": user["userPrincipalName"]}


def _directory_route(handler: _Handler, parts: list[str], query: dict) -> bool:
    """The directory endpoints preflight reads; True when ``parts`` named one (answered, found or not):
    ``/servicePrincipals/{id}`` (``$select``), ``/servicePrincipals/{id}/appRoleAssignedTo`` (paged),
    ``/servicePrincipals/{id}/synchronization/jobs/{jobId}/schema``, ``/groups/{id}/members`` (paged, direct
    members: users and groups), ``/users/{id}`` and ``/users?$filter=id in (...)`` (``$select``, paged)."""
    directory = handler.server.owner.data.directory
    if not directory:
        return False
    version, rest = parts[0], parts[1:]
    path = "/" + "/".join(rest)
    sps, groups, users = directory["service_principals"], directory["groups"], directory["users"]
    if rest and rest[0] == "servicePrincipals" and len(rest) >= 2:
        sp = sps.get(rest[1])
        if len(rest) == 2:
            if sp is None:
                _not_found(handler, rest[1])
                return True
            obj = {"id": sp["id"], "displayName": sp["displayName"], "appRoles": sp["appRoles"]}
            handler._send(200, orjson.dumps(_selected(obj, query)))
            return True
        if len(rest) == 3 and rest[2] == "appRoleAssignedTo":
            if sp is None:
                _not_found(handler, rest[1])
            else:
                _directory_page(handler, version, path, sp["assignments"], query,
                                f"servicePrincipals('{rest[1]}')/appRoleAssignedTo")
            return True
        if len(rest) == 6 and rest[2:4] == ["synchronization", "jobs"] and rest[5] == "schema":
            schema = (sp or {}).get("schemas", {}).get(rest[4])
            if schema is None:
                _not_found(handler, rest[4] if sp else rest[1])
            else:
                handler._send(200, orjson.dumps({"@odata.context": f"http://{handler.server.owner.host_port}/"
                                                 f"{version}/$metadata#servicePrincipals('{rest[1]}')/"
                                                 f"synchronization/jobs('{rest[4]}')/schema/$entity", **schema}))
            return True
        return False
    if len(rest) == 3 and rest[0] == "groups" and rest[2] == "members":
        group = groups.get(rest[1])
        if group is None:
            _not_found(handler, rest[1])
        else:
            _directory_page(handler, version, path, [_member(directory, m) for m in group["members"]], query,
                            "directoryObjects")
        return True
    if rest == ["users"]:
        m = _ID_IN.match(query.get("$filter") or "")
        if not m:
            handler._send(400, _error("BadRequest", "Only $filter=id in ('...') is supported on /users here."))
            return True
        ids = [v.strip().strip("'") for v in m.group(1).split(",") if v.strip()]
        rows = [_selected(users[i], query) for i in ids if i in users]
        _directory_page(handler, version, path, rows, query, "users")
        return True
    if len(rest) == 2 and rest[0] == "users":
        user = users.get(rest[1])
        if user is None:
            _not_found(handler, rest[1])
        else:
            handler._send(200, orjson.dumps(_selected(user, query)))
        return True
    return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: FakeGraphServer

    def handle_error(self, request, client_address):  # a client killed mid-request is not a server error
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class FakeGraphServer:
    """The fake Graph; ``start()`` on a free port (port 0) in a thread, ``stop()`` to end it."""

    def __init__(self, data: GraphData, *, host: str = "127.0.0.1", port: int = 0, token: str | None = DEFAULT_TOKEN,
                 max_top: int = 999, throttle: tuple[int, float] | None = None, faults: list[str] | None = None,
                 latency: float = 0.0, audit_faults: list[str] | None = None, directory_page: int = 100):
        self.data = data
        self.directory_page = directory_page  # most entries on one page of the directory endpoints (issue 26)
        data._joined = None
        data.joined()  # before serving: the first page need not wait for it
        self.latency = latency  # seconds each provisioning page takes to answer (Graph: ~1 s)
        self.token = token
        self.max_top = max_top
        self.throttle_rate = throttle
        self.faults = FaultPlan(faults)
        self.audit_faults = FaultPlan(audit_faults)  # the directory audit log's own plan (issue 24)
        self.tokens: dict[str, tuple[tuple[str, str], int]] = {}
        self._cache: dict[tuple[str, str], list[int]] = {}
        self._lock = threading.Lock()
        self._sent: deque[float] = deque()
        self.log: list[tuple[str, int]] = []
        self.httpd = _Server((host, port), _Handler)
        self.httpd.owner = self
        self.thread: threading.Thread | None = None

    @property
    def host_port(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"{host}:{port}"

    @property
    def base_url(self) -> str:
        return f"http://{self.host_port}/v1.0"

    def start(self) -> FakeGraphServer:
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self.thread:
            self.thread.join(timeout=5)

    def __enter__(self) -> FakeGraphServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_faults(self, specs: list[str]) -> None:
        self.faults.set(specs)

    def provisioning_requests(self) -> list[tuple[str, int]]:
        return [(p, s) for p, s in self.log if "/auditLogs/provisioning" in p]

    def audit_requests(self) -> list[tuple[str, int]]:
        return [(p, s) for p, s in self.log if "/auditlogs/directoryaudits" in p.lower()]

    # ------------------------------------------------------------------ internals
    def _log(self, path: str, status: int) -> None:
        with self._lock:
            self.log.append((path, status))

    def _token_ok(self, header: str | None) -> bool:
        if self.token is None:
            return True
        return header == f"Bearer {self.token}"

    def _throttle(self) -> float | None:
        if not self.throttle_rate:
            return None
        count, per = self.throttle_rate
        with self._lock:
            now = time.monotonic()
            while self._sent and self._sent[0] <= now - per:
                self._sent.popleft()
            if len(self._sent) >= count:
                return self._sent[0] + per - now
            self._sent.append(now)
        return None

    def _matches(self, filter_text: str, orderby: str) -> list[int]:
        key = (filter_text, orderby)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        pred = compile_filter(filter_text)
        plain = getattr(pred, "plain", None)
        if plain is not None:  # exact bisection: gt/le after equal times, ge/lt before them
            times = self.data.times
            lo, hi = 0, len(times)
            for op, t in plain[0]:
                if op in ("gt", "ge"):
                    lo = max(lo, (bisect.bisect_right if op == "gt" else bisect.bisect_left)(times, t))
                else:
                    hi = min(hi, (bisect.bisect_right if op == "le" else bisect.bisect_left)(times, t))
            sp, sps = plain[1], self.data.sp_ids
            idx = list(range(lo, hi)) if sp is None else [i for i in range(lo, hi) if sps[i] == sp]
        else:
            lo, hi = _time_window(filter_text, len(self.data.times), self.data.times)
            idx = [i for i in range(lo, hi) if pred(self.data.events[i])]
        order = orderby.strip().lower()
        if order and not order.startswith("activitydatetime"):
            raise FilterError(f"Invalid $orderby: '{orderby}' (only activityDateTime is supported)")
        if order.endswith("desc"):
            idx.reverse()
        with self._lock:
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[key] = idx
        return idx

    def _new_token(self, key: tuple[str, str], offset: int) -> str:
        with self._lock:
            token = hashlib.sha256(f"{len(self.tokens)}:{key}:{offset}:{time.time_ns()}".encode()).hexdigest()[:40]
            self.tokens[token] = (key, offset)
        return token


# ----------------------------------------------------------------------------- CLI
def _rate(text: str) -> tuple[int, float]:
    m = re.fullmatch(r"(\d+)/(\d+(?:\.\d+)?)s?", text.strip())
    if not m:
        raise argparse.ArgumentTypeError("expected N/Ts, e.g. 5/10s")
    return int(m.group(1)), float(m.group(2))


def _fault(text: str) -> str:
    from simulator.faults import parse_fault

    try:
        parse_fault(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def build_parser():
    from ingest.cliargs import Parser, int_at_least, iso_time

    p = Parser(prog="python -m simulator.graph_server", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int_at_least(0), default=8765, help="port to listen on (0: a free one)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", help="directory written by `python -m simulator --out DIR`")
    src.add_argument("--seed", type=int, help="generate a tenant with this seed (default 7)")
    p.add_argument("--users", type=int_at_least(25), default=200, help="users of the generated tenant")
    p.add_argument("--days", type=int_at_least(1), default=14, help="days of the generated tenant's activity")
    p.add_argument("--end", type=iso_time,
                   help="end of the generated period (ISO-8601; default: now rounded down to the hour)")
    p.add_argument("--token", default=DEFAULT_TOKEN, help="bearer token to accept")
    p.add_argument("--no-auth", action="store_true", help="accept requests without a token")
    p.add_argument("--max-top", type=int_at_least(1), default=999, help="largest $top the server accepts")
    p.add_argument("--throttle", type=_rate, help="per-tenant limit, e.g. 5/10s (429 beyond it; default: none)")
    p.add_argument("--fault", action="append", type=_fault, default=[],
                   help="N:kind[:key=value,...] (see simulator/faults.py; repeatable)")
    p.add_argument("--latency", type=float, default=0.0, help="seconds every provisioning page takes")
    return p


def main(argv: list[str] | None = None) -> int:
    from ingest.cliargs import this_hour

    args = build_parser().parse_args(argv)
    if args.data:
        data = GraphData.from_dir(args.data)
    else:
        from simulator import generate

        kwargs = {"seed": args.seed if args.seed is not None else 7, "users": args.users, "days": args.days,
                  "end": args.end or this_hour()}
        data = GraphData.from_simulation(generate(**kwargs))
    server = FakeGraphServer(data, host=args.host, port=args.port, token=None if args.no_auth else args.token,
                             max_top=args.max_top, throttle=args.throttle, faults=args.fault, latency=args.latency)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    print(f"fake Graph serving {len(data.events)} events at {server.base_url}", flush=True)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
