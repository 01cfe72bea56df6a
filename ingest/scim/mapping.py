"""Field mappings: how a server's own log shape feeds the ``scim-audit/1`` fields, without code.

A mapping file (TOML or JSON) has up to four parts::

    format = "json"                  # json | csv | combined | common | regex; default: detected from the content
    pattern = '...'                  # format = "regex" only: a regular expression with named groups
    [fields]                         # our field = their field name (a regex's group name) or a JSON path
    ts = "$.time"
    status = "$.response.status"
    url = "$.request.uri"            # path and query in one (split at '?')
    [constants]                      # our field = a fixed value for every line
    tenant = "acme-prod"
    [options]
    unmapped = "same-name"           # fields not in [fields] are read from a field of the same name ("ignore": not)
    ts_format = "%d/%b/%Y:%H:%M:%S %z"   # strptime pattern when ts is not RFC 3339 / epoch / Apache style
    timezone = "+02:00"              # the zone of times written without an offset (an IANA name works too); UTC
    duration_unit = "ms"             # ms | s | us
    unmatched_lines = "reject"       # text formats: a line the format does not match is a reject ("skip": counted)

A JSON path is ``$`` followed by ``.name``, ``['name with.dots']`` or ``[index]`` steps. A plain name
is a top-level key (tried as a dotted path when no such key exists).
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Our fields: the scim-audit/1 columns plus inputs that only feed derivations.
RECORD_FIELDS = ("ts", "request_id", "method", "path", "query", "status", "duration_ms", "resource_type",
                 "resource_id", "external_id", "user_name", "operation", "scim_type", "error_detail",
                 "email_domains", "email_types", "active_after", "client_ip", "user_agent", "credential_id",
                 "tenant")
DERIVATION_INPUTS = ("url", "body", "response_body", "emails")
OUR_FIELDS = RECORD_FIELDS + DERIVATION_INPUTS
FORMATS = ("json", "csv", "combined", "common", "regex")
# What a regex must yield (a group, a [fields] source or a constant); the request id is optional (a line
# without one is keyed by its position: see ingest.scim.filestate.fallback_key).
REGEX_NEEDS = ("ts", "method", "status")
_OFFSET = re.compile(r"^(?:UTC|Z|([+-])(\d{2}):?(\d{2}))$", re.IGNORECASE)
DURATION_UNITS = {"ms": 1.0, "s": 1000.0, "us": 0.001}

_STEP = re.compile(r"""\.([^.\[\]]+)|\[(\d+)\]|\['((?:[^'\\]|\\.)*)'\]|\["((?:[^"\\]|\\.)*)"\]""")
_MISSING = object()


class MappingError(Exception):
    """The mapping file is unreadable or names something we do not know; the message says what."""


def compile_path(spec: str) -> Callable[[Any], Any]:
    """A getter for a JSON path (``$.a.b[0]``) or a plain field name; missing parts give ``None``."""
    if not isinstance(spec, str) or not spec:
        raise MappingError(f"a field source must be a non-empty string, got {spec!r}")
    if not spec.startswith("$"):
        dotted = compile_path("$." + spec) if "." in spec else None

        def by_name(obj: Any) -> Any:
            if isinstance(obj, dict) and spec in obj:
                return obj[spec]
            return dotted(obj) if dotted else None
        return by_name
    steps: list[str | int] = []
    pos = 1
    while pos < len(spec):
        m = _STEP.match(spec, pos)
        if not m:
            raise MappingError(f"cannot read JSON path {spec!r} at character {pos}")
        name, index, sq, dq = m.groups()
        steps.append(int(index) if index is not None else (name if name is not None else (sq or dq or "")))
        pos = m.end()

    def by_path(obj: Any) -> Any:
        for step in steps:
            if isinstance(step, int):
                if not isinstance(obj, list) or step >= len(obj):
                    return None
                obj = obj[step]
            else:
                if not isinstance(obj, dict):
                    return None
                obj = obj.get(step, _MISSING)
                if obj is _MISSING:
                    return None
        return obj
    return by_path


@dataclass
class Mapping:
    """Compiled mapping: ``extract(record)`` gives our fields (absent ones are ``None``)."""

    getters: dict[str, Callable[[Any], Any]] = field(default_factory=dict)
    constants: dict[str, Any] = field(default_factory=dict)
    format: str | None = None
    ts_format: str | None = None
    duration_factor: float = 1.0
    same_name: bool = True
    source: str = "built-in scim-audit/1"
    specs: dict[str, str] = field(default_factory=dict)  # [fields] as written: our field -> their name or path
    pattern: re.Pattern | None = None  # format = "regex"
    naive_tz: tzinfo = timezone.utc  # the zone of a time written without an offset
    skip_unmatched: bool = False  # text formats: count lines the format does not match instead of rejecting them

    def source_names(self, name: str) -> list[str]:
        """The field names (CSV columns) this mapping reads our field from: its [fields] entry, else the same
        name (when unmapped = "same-name")."""
        spec = self.specs.get(name)
        if spec is not None:
            return [spec[2:] if spec.startswith("$.") else spec]
        return [name] if self.same_name else []

    def extract(self, obj: dict) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in OUR_FIELDS:
            getter = self.getters.get(name)
            if getter is not None:
                out[name] = getter(obj)
            elif self.same_name:
                out[name] = obj.get(name)
            else:
                out[name] = None
        for name, value in self.constants.items():
            out[name] = value
        return out


DEFAULT_MAPPING = Mapping()


def load_mapping(path: str | os.PathLike | dict | None) -> Mapping:
    """Read and check a mapping file; ``None`` gives the built-in scim-audit/1 mapping. A dict is a mapping
    given inline (a ``mapping = {...}`` table in ``provlens.toml``)."""
    if path is None:
        return DEFAULT_MAPPING
    if isinstance(path, dict):
        return mapping_from_doc(path, "the inline mapping")
    path = str(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise MappingError(f"cannot read mapping file {path}: {exc.strerror or exc}") from exc
    try:
        if path.lower().endswith(".json"):
            doc = json.loads(data.decode("utf-8-sig"))
        else:
            doc = tomllib.loads(data.decode("utf-8-sig"))
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise MappingError(f"mapping file {path} is not valid {'JSON' if path.endswith('.json') else 'TOML'}: "
                           f"{exc}") from exc
    return mapping_from_doc(doc, f"mapping file {path}", path)


def mapping_from_doc(doc: Any, where: str, source: str | None = None) -> Mapping:
    """Check a decoded mapping document and compile it; errors name ``where`` and what to change."""
    if not isinstance(doc, dict):
        raise MappingError(f"{where} must hold an object/table")
    unknown_top = set(doc) - {"format", "pattern", "fields", "constants", "options", "description", "name"}
    if unknown_top:
        raise MappingError(f"{where}: unknown section(s) {', '.join(sorted(unknown_top))} "
                           "(expected format, pattern, fields, constants, options)")
    fields = doc.get("fields", {}) or {}
    constants = doc.get("constants", {}) or {}
    options = doc.get("options", {}) or {}
    for section, value in (("fields", fields), ("constants", constants), ("options", options)):
        if not isinstance(value, dict):
            raise MappingError(f"{where}: [{section}] must be a table/object")
    for name in list(fields) + list(constants):
        if name not in OUR_FIELDS:
            raise MappingError(f"{where}: unknown field {name!r}; ours are {', '.join(OUR_FIELDS)}")
    fmt = doc.get("format")
    if fmt is not None and fmt not in FORMATS:
        raise MappingError(f"{where}: format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    unit = options.get("duration_unit", "ms")
    if not isinstance(unit, str) or unit not in DURATION_UNITS:  # a list here crashed (issue 8 property test)
        raise MappingError(f"{where}: duration_unit must be one of {', '.join(DURATION_UNITS)}")
    unmapped = options.get("unmapped", "same-name")
    if unmapped not in ("same-name", "ignore"):
        raise MappingError(f"{where}: options.unmapped must be 'same-name' or 'ignore'")
    ts_format = options.get("ts_format")
    if ts_format is not None and not isinstance(ts_format, str):
        raise MappingError(f"{where}: options.ts_format must be a strptime pattern string")
    unmatched = options.get("unmatched_lines", "reject")
    if unmatched not in ("reject", "skip"):
        raise MappingError(f"{where}: options.unmatched_lines must be 'reject' or 'skip'")
    pattern = _compile_pattern(doc.get("pattern"), fmt, fields, constants, where)
    return Mapping(getters={name: compile_path(spec) for name, spec in fields.items()}, constants=dict(constants),
                   format=fmt, ts_format=ts_format, duration_factor=DURATION_UNITS[unit],
                   same_name=unmapped == "same-name", source=source or where, specs=dict(fields), pattern=pattern,
                   naive_tz=_zone(options.get("timezone"), where), skip_unmatched=unmatched == "skip")


def _compile_pattern(pattern: Any, fmt: str | None, fields: dict, constants: dict, where: str) -> re.Pattern | None:
    """format = "regex": the pattern, checked to yield every field a request needs."""
    if fmt != "regex":
        if pattern is not None:
            raise MappingError(f'{where}: pattern is only read with format = "regex"')
        return None
    if not isinstance(pattern, str) or not pattern:
        raise MappingError(f'{where}: format = "regex" needs pattern = \'...\' (a regular expression with named '
                           "groups, e.g. (?P<ts>...), (?P<method>...), (?P<path>...), (?P<status>...))")
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise MappingError(f"{where}: pattern is not a valid regular expression: {exc}") from exc
    groups = set(compiled.groupindex)
    provided = set(groups)
    if "request" in groups:
        provided |= {"method", "url"}
    for name, spec in fields.items():
        if isinstance(spec, str) and spec.removeprefix("$.") in groups:
            provided.add(name)
    provided |= set(constants)
    needs = [n for n in REGEX_NEEDS if n not in provided]
    if not provided & {"path", "url"}:
        needs.append("path")
    if needs:
        raise MappingError(f"{where}: the pattern has no group for {', '.join(repr(n) for n in needs)}; name one "
                           f"(?P<{needs[0]}>...) or map it in [fields] (groups: {', '.join(sorted(groups)) or 'none'})")
    return compiled


def _zone(value: Any, where: str) -> tzinfo:
    """options.timezone: UTC, a fixed offset (+02:00, -0500) or an IANA name (Europe/Berlin)."""
    if value is None:
        return timezone.utc
    if isinstance(value, str):
        m = _OFFSET.match(value.strip())
        if m:
            if not m[1]:
                return timezone.utc
            delta = timedelta(hours=int(m[2]), minutes=int(m[3]))
            return timezone(-delta if m[1] == "-" else delta)
        try:
            zone = ZoneInfo(value.strip())
            datetime(2000, 1, 1, tzinfo=zone).utcoffset()
            return zone
        except (ZoneInfoNotFoundError, ValueError):
            pass
    raise MappingError(f"{where}: options.timezone must be UTC, an offset like +02:00 or an IANA zone name like "
                       f"Europe/Berlin, got {value!r}")
