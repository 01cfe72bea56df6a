"""File source: Graph-style JSON exports (pages ``{"value": [...]}``, a JSON array, NDJSON, ``.gz``).

Also reads Microsoft Graph PowerShell output (``Get-MgAuditLogProvisioning | ConvertTo-Json``, PascalCase
keys) and the beta shape. Every file is read in one pass: good events go to a staging NDJSON file
(``{"pos": ..., "raw": <event>}`` per line) that the store loads in bulk; bad ones become
:class:`~ingest.store.Reject` records with the file and position. A truncated page or array still
yields every complete event before the cut.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from ingest.event_sql import TIME_RANGE_YEARS
from ingest.paths import expand_paths as expand_any
from ingest.store import Reject

SUFFIXES = (".json", ".ndjson", ".jsonl", ".json.gz", ".ndjson.gz", ".jsonl.gz")
_DECODER = json.JSONDecoder()


@dataclass
class FileScan:
    """What reading one file produced."""

    path: str
    events: int = 0
    rejects: list[Reject] = field(default_factory=list)
    fatal: str | None = None  # set when nothing at all could be read from the file


def expand_paths(paths: list[str]) -> tuple[list[str], list[str]]:
    """Files named directly, found in directories (JSON/NDJSON names, recursively) or matched by globs."""
    return expand_any(paths, lambda name: name.endswith(SUFFIXES))


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as fh:
        head = fh.read(2)
    if head == b"\x1f\x8b":
        with gzip.open(path, "rb") as fh:
            return fh.read()
    return Path(path).read_bytes()


def looks_like_clean_ndjson(path: str) -> bool:
    """NDJSON of Graph-shaped (camelCase) events, plain or .gz by name: a candidate for DuckDB's fast path."""
    name = path.lower()
    if not name.endswith((".ndjson", ".jsonl", ".ndjson.gz", ".jsonl.gz")):
        return False
    try:
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rb") as fh:
            first = fh.readline(1 << 20)
    except (OSError, EOFError):
        return False
    try:
        obj = orjson.loads(first)
    except orjson.JSONDecodeError:
        return False
    return isinstance(obj, dict) and isinstance(obj.get("id"), str)


def _lower_first(key: str) -> str:
    return key[:1].lower() + key[1:] if key[:1].isupper() else key


def camelize(obj: object, *, keep_keys: bool = False) -> object:
    """PowerShell's PascalCase keys to Graph's camelCase; ``details`` maps keep their own keys."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            name = k if keep_keys else _lower_first(k)
            out[name] = camelize(v, keep_keys=name in ("details", "additionalProperties"))
        return out
    if isinstance(obj, list):
        return [camelize(v) for v in obj]
    return obj


_YEAR = re.compile(r"\s*([+-]?)(\d+)-")


def time_out_of_range(text: str) -> bool:
    """A date DuckDB would parse but outside ``TIME_RANGE_YEARS`` (year 10000, year 0, ``-0001``, a BC date)."""
    if "BC" in text.upper():
        return True
    m = _YEAR.match(text)
    if not m:
        return False  # not a date at all: the store rejects it as such
    return m.group(1) == "-" or not TIME_RANGE_YEARS[0] <= int(m.group(2)) <= TIME_RANGE_YEARS[1]


def _normalise_event(obj: object) -> tuple[dict | None, str | None]:
    """An event dict ready to stage, or the reason it cannot be one."""
    if not isinstance(obj, dict):
        return None, f"not a JSON object ({type(obj).__name__})"
    if "id" not in obj and "Id" in obj:
        obj = camelize(obj)
    ident = obj.get("id")
    if not isinstance(ident, str) or not ident:
        return None, "event has no id"
    if not isinstance(obj.get("activityDateTime"), str) or not obj["activityDateTime"]:
        return None, "event has no activityDateTime"
    if time_out_of_range(obj["activityDateTime"]):
        return None, (f"activityDateTime out of range: {obj['activityDateTime'][:40]!r} (accepted: years "
                      f"{TIME_RANGE_YEARS[0]}-{TIME_RANGE_YEARS[1]})")
    return obj, None


def _salvage_items(text: str, start: int) -> Iterator[tuple[int, object | None, str | None]]:
    """Walk a JSON array starting at ``text[start] == '['`` item by item, stopping at a cut."""
    i = start + 1
    n = len(text)
    index = 0
    while i < n:
        while i < n and text[i] in " \t\r\n,":
            i += 1
        if i >= n or text[i] == "]":
            return
        try:
            obj, i = _DECODER.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            yield index, None, f"truncated or invalid JSON at character {exc.pos}: {exc.msg}"
            return
        yield index, obj, None
        index += 1


def scan_file(path: str, sink) -> FileScan:
    """Read one file, write each good event to ``sink`` (a binary file) and collect the rejects."""
    scan = FileScan(path=path)
    try:
        data = read_bytes(path)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        scan.fatal = f"cannot read file: {exc}"
        return scan
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    stripped = data.lstrip()
    if not stripped:
        scan.fatal = "file is empty"
        return scan

    def emit(position: str, obj: object, text: bytes | None = None) -> None:
        """Stage one event; ``text`` is its original JSON when it can be staged as it came."""
        event, reason = _normalise_event(obj)
        if reason:
            scan.rejects.append(Reject(path, position, reason, orjson.dumps(obj).decode()[:200]))
            return
        body = text if (text is not None and event is obj) else orjson.dumps(event)
        sink.write(b'{"pos":' + orjson.dumps(f"{path}#{position}") + b',"raw":' + body + b"}\n")
        scan.events += 1

    try:
        doc = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        doc = _NOT_JSON
    if doc is not _NOT_JSON:
        if isinstance(doc, list):
            for i, item in enumerate(doc):
                emit(f"item[{i}]", item)
        elif isinstance(doc, dict) and isinstance(doc.get("value"), list):
            for i, item in enumerate(doc["value"]):
                emit(f"value[{i}]", item)
        elif isinstance(doc, dict) and ("id" in doc or "Id" in doc):
            emit("document", doc)
        else:
            scan.fatal = "JSON document holds no events (expected {\"value\": [...]}, an array or NDJSON)"
        return scan
    _scan_text_fallback(path, stripped, scan, emit)
    return scan


_NOT_JSON = object()


def _scan_text_fallback(path: str, data: bytes, scan: FileScan, emit) -> None:
    """NDJSON, or a page/array that was cut off: keep every complete event."""
    first_line = data.split(b"\n", 1)[0].strip()
    is_ndjson = False
    try:
        is_ndjson = isinstance(orjson.loads(first_line), dict)
    except orjson.JSONDecodeError:
        pass
    if is_ndjson:
        for lineno, line in enumerate(data.split(b"\n"), start=1):
            line = line.strip()
            if not line:
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                scan.rejects.append(Reject(path, f"line {lineno}", f"invalid JSON: {exc}", line[:200].decode(
                    "utf-8", errors="replace")))
                continue
            emit(f"line {lineno}", obj, line)
        return
    text = data.decode("utf-8", errors="replace")
    start = None
    if text.startswith("["):
        start = 0
    else:
        key = text.find('"value"')
        if key >= 0:
            bracket = text.find("[", key)
            start = bracket if bracket >= 0 else None
    if start is None:
        scan.fatal = "not JSON, NDJSON or a Graph page (no events found)"
        scan.rejects.append(Reject(path, "byte 0", scan.fatal, text[:200]))
        return
    label = "item" if start == 0 else "value"
    for index, obj, problem in _salvage_items(text, start):
        if problem:
            scan.rejects.append(Reject(path, f"{label}[{index}]", problem, text[-200:]))
        else:
            emit(f"{label}[{index}]", obj)
