"""Text access logs: one line of Apache/nginx ``common`` or ``combined`` format, or of a mapping's own regular
expression with named groups, as a dict of named fields that the mapping then reads like a JSON object.

``common``   ``%h %l %u %t "%r" %>s %b`` (Apache), ``$remote_addr - $remote_user [$time_local] "$request"
$status $body_bytes_sent`` (nginx);
``combined`` common plus ``"%{Referer}i" "%{User-agent}i"``; fields a server appends after these (nginx's
``main`` adds ``"$http_x_forwarded_for"``, others a request time) are kept in ``extra``. gunicorn's default
access log is ``combined``.

The fields are named after ours where they are ours (``client_ip``, ``ts``, ``status``, ``user_agent``;
``request`` is the request line, split into ``method``, ``url`` and ``protocol``) and kept under their log
names otherwise (``ident``, ``user``, ``bytes``, ``referer``). ``-`` is the logs' "no value": it becomes
``None``. A regex's named groups are taken as they are, with two conveniences: a ``request`` group is split
like the request line above, and a ``duration`` group feeds ``duration_ms``.
"""

from __future__ import annotations

import re

from ingest.scim.parse import LineRejected

_Q = r'(?:[^"\\]|\\.)*'  # the inside of a quoted field: anything but a bare quote
# The time must carry its offset: a log without one (Python wsgiref's "[10/Oct/2000 13:55:36]") is not guessed to be
# UTC; it needs a regex mapping with options.timezone.
_TIME = r"\d{1,2}/[A-Za-z]{3}/\d{4}:\d{2}:\d{2}:\d{2}(?:\.\d+)? [+-]\d{4}"
_COMMON = (rf'^(?P<client_ip>\S+) (?P<ident>\S+) (?P<user>\S+) \[(?P<ts>{_TIME})\] '
           rf'"(?P<request>{_Q})" (?P<status>\d{{3}}|-) (?P<bytes>\d+|-)')
COMMON = re.compile(_COMMON + r"\s*$")
COMBINED = re.compile(_COMMON + rf' "(?P<referer>{_Q})" "(?P<user_agent>{_Q})"(?:\s+(?P<extra>.*?))?\s*$')
BUILT_IN = {"common": COMMON, "combined": COMBINED}
TEXT_FORMATS = ("combined", "common", "regex")
_REQUEST_LINE = re.compile(r"^(?P<method>[A-Za-z]+) (?P<url>\S+)(?: (?P<protocol>[A-Z]+/\d(?:\.\d)?))?$")
_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|.)")


def _unescape(text: str) -> str:
    """Undo the logs' escaping inside quoted fields: Apache's ``\\"``, nginx's ``\\x22``."""
    def one(m: re.Match) -> str:
        code = m[1]
        if code.startswith("x") and len(code) == 3:
            return chr(int(code[1:], 16))
        return code
    return _ESCAPE.sub(one, text) if "\\" in text else text


def split_request_line(text: str) -> dict[str, str]:
    """``GET /scim/v2/Users?filter=... HTTP/1.1`` -> method, url, protocol; a line that is not one (nginx logs
    a malformed request, e.g. TLS bytes sent to a plain port, as it came) is a reject with the reason."""
    m = _REQUEST_LINE.match(text.strip())
    if not m:
        shown = text if len(text) <= 60 else text[:60] + "..."
        raise LineRejected(f"request line {shown!r} is not 'METHOD PATH PROTOCOL' (a malformed or non-HTTP "
                           "request the server logged as it came)")
    return {k: v for k, v in m.groupdict().items() if v is not None}


def _fields(groups: dict[str, str | None]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name, value in groups.items():
        out[name] = None if value is None or value == "-" else value
    request = out.get("request")
    if request:
        for name, value in split_request_line(_unescape(request)).items():
            if out.get(name) is None:
                out[name] = value
    if out.get("duration") is not None and out.get("duration_ms") is None:
        out["duration_ms"] = out["duration"]
    for name in ("referer", "user_agent", "user"):
        if out.get(name):
            out[name] = _unescape(out[name])
    return out


def decode_text_line(line: bytes, pattern: re.Pattern, fmt: str) -> dict:
    """The named fields of one text log line (``pattern`` is the built-in format's or the mapping's regex)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LineRejected(f"invalid UTF-8 (byte 0x{line[exc.start]:02x} at column {exc.start + 1})") from None
    m = pattern.search(text) if fmt == "regex" else pattern.match(text)
    if not m:
        what = "the mapping's pattern" if fmt == "regex" else f"the {fmt} access log format"
        raise LineRejected(f"line does not match {what}")
    return _fields(m.groupdict())


def matches(line: bytes, pattern: re.Pattern, fmt: str) -> bool:
    """Whether a (cleaned) line is in this text format: used to detect a file's format from its content."""
    text = line.decode("utf-8", errors="replace")
    return bool(pattern.search(text) if fmt == "regex" else pattern.match(text))
