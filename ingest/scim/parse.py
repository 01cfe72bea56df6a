"""One audit-trail line -> one typed ``scim_requests`` record, or a :class:`LineRejected` with the reason.

Checks the required fields (ts, request_id, method, path, status) and the type of every known field,
reading a field's ``-`` (the logs' "no value") as absent; a request id that is absent or a placeholder (``-``,
empty, ``null``) is replaced by the caller's fallback key (the line's position in its file) when it gives one;
then derives what the line lacks: resource type/id and operation from method and path (and body
hints), ``user_name``/``external_id`` from a ``filter=userName eq "..."`` query, health probes (a
userName filter on a random GUID with no resource), ``active_after`` from "True"/"False", and email
domains (full addresses are never kept). The raw line is kept with secrets and addresses redacted, and so is
the query: the values of secret-looking parameters (``access_token``, ``code``, ``sig``, ...) become ``REDACTED``.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any
from urllib.parse import unquote, unquote_plus

import orjson

from ingest.scim.mapping import DEFAULT_MAPPING, Mapping

MAX_LINE_BYTES = 1 << 20  # a longer line is rejected, never loaded
REQUIRED = ("ts", "request_id", "method", "path", "status")
_STRINGS = ("query", "resource_type", "resource_id", "external_id", "user_name", "operation", "scim_type",
            "error_detail", "client_ip", "user_agent", "credential_id", "tenant")
_METHOD = re.compile(r"^[A-Z]{3,10}$")
_TIME_SHAPE = re.compile(r"^\d{4}-?\d{2}-?\d{2}[T ]\d{2}")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_FILTER_EQ = re.compile(r"""\b([A-Za-z][\w.:]*)\s+eq\s+"((?:[^"\\]|\\.)*)\"""", re.IGNORECASE)
_RESOURCES = {"users": "User", "groups": "Group", "schemas": "Schema", "serviceproviderconfig": "ServiceProviderConfig",
              "serviceproviderconfigs": "ServiceProviderConfig", "resourcetypes": "ResourceType", "bulk": "Bulk",
              "me": "Me"}
_DISCOVERY = {"Schema", "ServiceProviderConfig", "ResourceType"}
_SECRET_KEY = re.compile(r"authori[sz]ation|token|secret|password|passwd|cookie|api[-_]?key|credential$",
                         re.IGNORECASE)
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}
_BOM = b"\xef\xbb\xbf"
# Values a log writes for "no request id" (gunicorn's %({x-request-id}i)s without the header, an empty
# column, a serialised null): never a key, or every such line would collapse into the first.
PLACEHOLDER_IDS = frozenset({"", "-", "null", "none", "undefined", "n/a"})
# Apache/nginx/gunicorn time ([10/Oct/2000:13:55:36 -0700]) and Python wsgiref's (10/Oct/2000 13:55:36, no offset).
_CLF_TIME = re.compile(r"^\[?(\d{1,2})/([A-Za-z]{3})/(\d{4})[: ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,6}))?"
                       r"(?:\s*([+-])(\d{2}):?(\d{2}))?\]?$")
_MONTHS = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                                       "dec"), start=1)}


class LineRejected(Exception):
    """A line that cannot be loaded; ``str(exc)`` is the reason shown in the reject table."""


def _wrong(name: str, expected: str, value: Any) -> LineRejected:
    shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    return LineRejected(f"wrong type for '{name}': expected {expected}, got {shown[:60]}")


# ---------------------------------------------------------------------------------------- decoding
def decode_json_line(line: bytes) -> dict:
    """The JSON object on one line (BOM and CR already allowed for); rejects with a clear reason."""
    if len(line) > MAX_LINE_BYTES:
        raise LineRejected(f"line too long ({len(line)} bytes; the limit is {MAX_LINE_BYTES})")
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LineRejected(f"invalid UTF-8 (byte 0x{line[exc.start]:02x} at column {exc.start + 1})") from None
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise LineRejected(f"invalid JSON: {str(exc)[:120]}") from None
    if not isinstance(obj, dict):
        raise LineRejected(f"not a JSON object (a JSON {type(obj).__name__})")
    return obj


def clean_line(line: bytes) -> bytes:
    """Strip the line ending (LF or CRLF), a leading BOM and surrounding whitespace."""
    if line.startswith(_BOM):
        line = line[3:]
    return line.strip(b" \t\r\n")


def read_csv_header(line: bytes) -> list[str]:
    text = line.decode("utf-8", errors="replace")
    return [h.strip() for h in next(csv.reader(io.StringIO(text)), [])]


def decode_csv_line(line: bytes, header: list[str]) -> dict:
    """One CSV record (one physical line; fields holding line breaks are not supported) as {column: text}."""
    if len(line) > MAX_LINE_BYTES:
        raise LineRejected(f"line too long ({len(line)} bytes; the limit is {MAX_LINE_BYTES})")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LineRejected(f"invalid UTF-8 (byte 0x{line[exc.start]:02x} at column {exc.start + 1})") from None
    try:
        rows = list(csv.reader(io.StringIO(text), strict=True))
    except csv.Error as exc:
        raise LineRejected(f"invalid CSV: {exc}") from None
    if len(rows) != 1:
        raise LineRejected("invalid CSV: not exactly one record")
    row = rows[0]
    if len(row) != len(header):
        raise LineRejected(f"CSV row has {len(row)} fields, the header has {len(header)}")
    return {name: (value if value != "" else None) for name, value in zip(header, row)}


# ---------------------------------------------------------------------------------------- coercion
def _clf_time(text: str, naive_tz: tzinfo) -> datetime | None:
    """An access log's time (English month names whatever the locale), or None when it is not one."""
    m = _CLF_TIME.match(text)
    if not m or m[2].lower() not in _MONTHS:
        return None
    day, _mon, year, hh, mm, ss, frac, sign, oh, om = m.groups()
    try:
        if sign:
            offset = timedelta(hours=int(oh), minutes=int(om))
            zone: tzinfo = timezone(-offset if sign == "-" else offset)  # ValueError past 24 h
        else:
            zone = naive_tz
        return datetime(int(year), _MONTHS[m[2].lower()], int(day), int(hh), int(mm), int(ss),
                        int((frac or "0").ljust(6, "0")), tzinfo=zone)
    except ValueError:
        return None


def parse_ts(value: Any, ts_format: str | None = None, naive_tz: tzinfo = timezone.utc) -> str:
    """An ISO-8601 UTC string with microseconds for DuckDB; accepts RFC 3339, epoch s/ms, an access log's time
    (``[10/Oct/2000:13:55:36 -0700]``) and a pattern. A time without an offset is in ``naive_tz`` (UTC unless
    the mapping says otherwise)."""
    if value is None or value == "":
        raise LineRejected("missing required field 'ts'")
    if isinstance(value, bool):
        raise _wrong("ts", "a time", value)
    if isinstance(value, (int, float)):
        seconds = value / 1000.0 if value > 1e11 else float(value)
        try:
            t = datetime.fromtimestamp(seconds, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise _wrong("ts", "a time", value) from None
    elif isinstance(value, str):
        text = value.strip()
        t = None
        if ts_format:
            try:
                t = datetime.strptime(text, ts_format)
            except ValueError:
                t = None
        if t is None and not _TIME_SHAPE.match(text):
            t = _clf_time(text, naive_tz)  # an access log's time
            if t is None:
                raise LineRejected(f"wrong type for 'ts': not a time ({text[:60]!r})")
        if t is None:
            try:
                t = datetime.fromisoformat(text.replace("z", "Z"))
            except ValueError:
                raise LineRejected(f"wrong type for 'ts': not a time ({text[:60]!r})") from None
        if t.tzinfo is None:
            t = t.replace(tzinfo=naive_tz)
    else:
        raise _wrong("ts", "a time", value)
    try:
        t = t.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        raise LineRejected(f"wrong type for 'ts': not a plausible time ({value!r:.60})") from None
    if not 1970 <= t.year <= 2200:
        raise LineRejected(f"wrong type for 'ts': not a plausible time ({t.isoformat()})")
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_status(value: Any) -> int:
    if value is None or value == "":
        raise LineRejected("missing required field 'status'")
    if isinstance(value, bool):
        raise _wrong("status", "an HTTP status code", value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or not 100 <= value <= 599:
        raise _wrong("status", "an HTTP status code", value)
    return value


def parse_duration(value: Any, factor: float) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise _wrong("duration_ms", "a number", value)
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise _wrong("duration_ms", "a number", value) from None
    if not isinstance(value, (int, float)) or value != value or value < 0 or value == float("inf"):
        raise _wrong("duration_ms", "a non-negative number", value)
    return float(value) * factor


def parse_string(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise _wrong(name, "a string", value)
    if isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, str):
        raise _wrong(name, "a string", value)
    value = value.strip()
    return value or None


def parse_bool(name: str, value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise _wrong(name, "true/false", value)


def parse_list(name: str, value: Any) -> list[str] | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = value.split(";")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _wrong(name, "a list of strings", value)
    items = [v.strip().lower() for v in value if v.strip()]
    return items or None


def domain_of(address: str) -> str:
    """The domain of an address (or the value itself when it already is one); never the local part."""
    return address.rsplit("@", 1)[-1].strip().lower()


# ---------------------------------------------------------------------------------------- derivations
def split_path(path: str) -> tuple[str | None, str | None, bool]:
    """(resource_type, resource_id, is_search_endpoint) from a SCIM path like /scim/v2/Users/abc."""
    segments = [unquote(s) for s in path.split("/") if s]
    for i, segment in enumerate(segments):
        rtype = _RESOURCES.get(segment.lower())
        if rtype:
            rest = segments[i + 1:]
            if rest and rest[0].lower() == ".search":
                return rtype, None, True
            return rtype, (rest[0] if rest else None), False
    return None, None, False


def filter_values(query: str | None) -> dict[str, str]:
    """``attribute -> value`` of the ``eq`` comparisons in the query's ``filter`` (encoded or not)."""
    if not query:
        return {}
    found: dict[str, str] = {}
    for part in query.lstrip("?").split("&"):
        key, _, value = part.partition("=")
        if key.strip().lower() != "filter":
            continue
        for candidate in (value, unquote(value), unquote_plus(value)):
            matches = _FILTER_EQ.findall(candidate)
            if matches:
                for attr, val in matches:
                    found.setdefault(attr.lower(), val.replace('\\"', '"'))
                break
    return found


def _body_hints(body: Any) -> dict[str, Any]:
    """userName, externalId, active and emails from a SCIM request body (resource or PatchOp)."""
    hints: dict[str, Any] = {}
    if isinstance(body, str):
        try:
            body = orjson.loads(body)
        except orjson.JSONDecodeError:
            return hints
    if not isinstance(body, dict):
        return hints
    for key, value in body.items():
        low = key.lower()
        if low == "username":
            hints["user_name"] = value
        elif low == "externalid":
            hints["external_id"] = value
        elif low == "active":
            hints["active"] = value
        elif low == "emails":
            hints["emails"] = value
        elif low == "id":
            hints["id"] = value
    for op in body.get("Operations") or body.get("operations") or []:
        if not isinstance(op, dict):
            continue
        opname = str(op.get("op", "")).lower()
        path = str(op.get("path") or "").lower()
        value = op.get("value")
        if opname not in ("replace", "add"):
            continue
        if path == "active":
            hints["active"] = value
        elif not path and isinstance(value, dict):
            for key, inner in value.items():
                if key.lower() == "active":
                    hints["active"] = inner
        elif path.startswith("emails"):
            hints.setdefault("emails", value if isinstance(value, list) else [{"value": value}])
    return hints


def _emails(value: Any) -> tuple[list[str] | None, list[str] | None]:
    if value is None:
        return None, None
    if isinstance(value, (str, dict)):
        value = [value]
    if not isinstance(value, list):
        return None, None
    domains, types = [], []
    for item in value:
        if isinstance(item, str) and "@" in item:
            domains.append(domain_of(item))
        elif isinstance(item, dict) and isinstance(item.get("value"), str) and "@" in item["value"]:
            domains.append(domain_of(item["value"]))
            if isinstance(item.get("type"), str):
                types.append(item["type"].strip().lower())
    return domains or None, types or None


def derive_operation(method: str, rtype: str | None, resource_id: str | None, search: bool,
                     active_after: bool | None) -> str:
    if rtype in _DISCOVERY:
        return "discovery"
    prefix = {"User": "user", "Group": "group"}.get(rtype or "")
    if prefix is None:
        return "bulk" if rtype == "Bulk" else "other"
    if method == "GET":
        return f"{prefix}.get" if resource_id else f"{prefix}.search"
    if method == "POST":
        return f"{prefix}.search" if search else f"{prefix}.create"
    if method == "PUT":
        return f"{prefix}.replace"
    if method == "PATCH":
        if prefix == "user" and active_after is False:
            return "user.deactivate"
        if prefix == "user" and active_after is True:
            return "user.reactivate"
        return f"{prefix}.patch"
    if method == "DELETE":
        return f"{prefix}.delete"
    return "other"


def fingerprint_credential(value: str | None) -> str | None:
    """Keep a fingerprint, never a token: a value that looks like a secret is replaced by its hash."""
    if value is None:
        return None
    if value.lower().startswith(("bearer ", "basic ")) or len(value) > 40:
        return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:16]
    return value


@functools.lru_cache(maxsize=4096)
def _key_kind(key: str) -> str | None:
    """How :func:`redact` treats a field name: ``secret`` (replaced), ``secret_id`` (a string value is
    fingerprinted), ``email`` (domains kept) or None. Cached: a trail repeats the same few names, and
    matching the regex per key of every line was a third of the SCIM load's time."""
    if _SECRET_KEY.search(key):
        return "secret_id" if key.lower().endswith(("_id", "id")) else "secret"
    if key.lower() in ("emails", "email"):
        return "email"
    return None


# Query parameters whose value is a secret (issue 27: ``?access_token=...`` was stored and exported): OAuth and
# OIDC tokens and codes, client secrets and assertions, passwords, API keys, SAS/HMAC signatures; and any name
# the secret-field pattern matches (``*token*``, ``*secret*``, ``*password*``, ``*api_key*``, ...).
_SECRET_PARAMS = frozenset({
    "access_token", "code", "client_secret", "token", "id_token", "refresh_token", "password", "pwd", "passwd",
    "sig", "signature", "key", "apikey", "api_key", "assertion", "client_assertion", "session", "sessionid",
    "auth", "secret", "otp", "pin", "x-amz-signature", "x-amz-security-token", "x-goog-signature", "sas",
})
_QUERY_PARAM = re.compile(r"(^|[?&;])([^=&;#?]+)=([^&;#]*)")
REDACTED = "REDACTED"


@functools.lru_cache(maxsize=4096)
def _secret_param(name: str) -> bool:
    plain = unquote_plus(name).strip().lower()
    return plain in _SECRET_PARAMS or bool(_SECRET_KEY.search(plain)) or plain.endswith(("_sig", "_signature"))


def redact_query(text: str | None) -> str | None:
    """A query string (or a URL) with the values of secret-looking parameters replaced by ``REDACTED``."""
    if not text or "=" not in text:
        return text
    return _QUERY_PARAM.sub(lambda m: f"{m[1]}{m[2]}={REDACTED}" if m[3] and _secret_param(m[2]) else m[0], text)


def redact(obj: Any, depth: int = 0) -> Any:
    """The raw record with secret-looking fields and email local parts removed."""
    if depth > 20:
        return None
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            kind = _key_kind(str(key))
            if kind == "secret":
                out[key] = "[redacted]"
            elif kind == "secret_id" and isinstance(value, str):
                out[key] = fingerprint_credential(value)  # e.g. credential_id: keep an id, hash a token (issue 8)
            elif kind == "email":
                domains, types = _emails(value)
                out[key] = [{"domain": d} for d in domains or []]
            else:
                out[key] = redact(value, depth + 1)
        return out
    if isinstance(obj, list):
        return [redact(v, depth + 1) for v in obj]
    if isinstance(obj, str) and obj[:7].lower().startswith(("bearer ", "basic ")):
        return fingerprint_credential(obj)  # an Authorization value under any key (issue 8)
    if isinstance(obj, str) and "=" in obj:
        return redact_query(obj)  # a query or URL under any key: its secret parameters (issue 27)
    return obj


# ---------------------------------------------------------------------------------------- the record
def normalise(obj: dict, mapping: Mapping = DEFAULT_MAPPING,
              fallback_id: Callable[[], str] | None = None) -> dict[str, Any]:
    """Validate and type one decoded line (a JSON object, a CSV row or a text log line's fields) into our record.
    ``fallback_id`` gives the key of a line without a usable request id (absent, or a placeholder such as ``-``);
    without it such a line is rejected."""
    f = mapping.extract(obj)
    if "-" in f.values():  # rare, so checked in one pass first (normalise runs once per line of big trails)
        f = {name: (None if isinstance(value, str) and value == "-" else value) for name, value in f.items()}
    request_id = f.get("request_id")
    if request_id is None or (isinstance(request_id, str) and request_id.strip().lower() in PLACEHOLDER_IDS):
        f["request_id"] = fallback_id() if fallback_id is not None else None
    if f.get("path") in (None, "") and isinstance(f.get("url"), str):
        path, _, query = f["url"].partition("?")
        f["path"] = path
        if f.get("query") in (None, "") and query:
            f["query"] = query
    for name in REQUIRED:
        if f.get(name) is None or (isinstance(f.get(name), str) and not f[name].strip()):
            raise LineRejected(f"missing required field '{name}'")
    rec: dict[str, Any] = {"ts": parse_ts(f["ts"], mapping.ts_format, mapping.naive_tz)}
    request_id = f["request_id"]
    if isinstance(request_id, bool) or not isinstance(request_id, (str, int)):
        raise _wrong("request_id", "a string", request_id)
    rec["request_id"] = str(request_id).strip()
    if len(rec["request_id"]) > 512:
        raise _wrong("request_id", "at most 512 characters", rec["request_id"][:40] + "...")
    method = f["method"]
    if not isinstance(method, str) or not _METHOD.match(method.strip().upper()):
        raise _wrong("method", "an HTTP method", method)
    rec["method"] = method.strip().upper()
    path = f["path"]
    if not isinstance(path, str):
        raise _wrong("path", "a string", path)
    path = path.strip()
    query = parse_string("query", f.get("query"))
    if "?" in path:
        path, _, inline = path.partition("?")
        query = query or inline or None
    rec["path"] = path
    rec["query"] = redact_query(query)  # derivations below read the query as sent; only its secrets go
    rec["status"] = parse_status(f["status"])
    rec["duration_ms"] = parse_duration(f.get("duration_ms"), mapping.duration_factor)
    for name in _STRINGS:
        if name != "query":
            rec[name] = parse_string(name, f.get(name))
    rec["email_domains"] = parse_list("email_domains", f.get("email_domains"))
    rec["email_types"] = parse_list("email_types", f.get("email_types"))
    if rec["email_domains"]:
        rec["email_domains"] = [domain_of(d) for d in rec["email_domains"]]
    rec["active_after"] = parse_bool("active_after", f.get("active_after"))

    # ---- derivations: fill only what the line lacks
    hints = _body_hints(f.get("body"))
    response = _body_hints(f.get("response_body"))
    rtype, path_id, search = split_path(path)
    filters = filter_values(query)
    rec["resource_type"] = rec["resource_type"] or rtype
    rec["resource_id"] = rec["resource_id"] or path_id or (
        parse_string("resource_id", response.get("id")) if 200 <= rec["status"] < 300 else None)
    if rec["user_name"] is None:
        rec["user_name"] = parse_string("user_name", filters.get("username") or hints.get("user_name")
                                        or response.get("user_name"))
    if rec["external_id"] is None:
        rec["external_id"] = parse_string("external_id", filters.get("externalid") or hints.get("external_id"))
    if rec["active_after"] is None and "active" in hints:
        rec["active_after"] = parse_bool("active_after", hints["active"])
    if rec["email_domains"] is None:
        domains, types = _emails(f.get("emails") if f.get("emails") is not None else hints.get("emails"))
        rec["email_domains"] = domains
        rec["email_types"] = rec["email_types"] or types
    probe_filter = filters.get("username")
    derived_probe = (rec["method"] == "GET" and rtype == "User" and path_id is None and probe_filter is not None
                     and bool(_GUID.match(probe_filter)) and rec["status"] in (200, 401, 403)
                     and rec["resource_id"] is None)
    if rec["operation"]:
        rec["operation"] = rec["operation"].lower()
    else:
        rec["operation"] = "probe" if derived_probe else derive_operation(
            rec["method"], rec["resource_type"], rec["resource_id"], search, rec["active_after"])
    rec["is_probe"] = rec["operation"] == "probe" or derived_probe
    rec["credential_id"] = fingerprint_credential(rec["credential_id"])
    rec["user_name_lower"] = rec["user_name"].lower() if rec["user_name"] else None
    return rec


def parse_json_line(line: bytes, mapping: Mapping = DEFAULT_MAPPING) -> tuple[dict, dict]:
    """(record, raw object) for one JSON line; raises :class:`LineRejected`."""
    obj = decode_json_line(line)
    return normalise(obj, mapping), obj
