"""File source: Graph-style JSON exports (pages ``{"value": [...]}``, a JSON array, NDJSON, ``.gz``).

Also reads, detected from the content (:mod:`ingest.shapes` turns each record into the Graph event): Microsoft
Graph PowerShell output (``Get-MgAuditLogProvisioning | ConvertTo-Json``, PascalCase keys), the beta shape, Azure
Monitor diagnostic-settings records (blobs, one per line) and Event Hub messages (``{"records": [...]}``), Log
Analytics ``AADProvisioningLogs`` rows (``az`` JSON, the Logs API's ``{"tables": [...]}``, the portal's CSV), in
UTF-8 (with or without a BOM) or UTF-16 (BOM or sniffed). Every file is read in one pass (a file bigger than
the memory cap, ``max_doc_bytes``, is streamed line by line or item by item): good events go to a staging NDJSON file
(``{"pos": ..., "raw": <event>}`` per line) that the store loads in bulk; bad ones become
:class:`~ingest.store.Reject` records with the file and position. A truncated page or array still
yields every complete event before the cut.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson

from ingest import shapes
from ingest.event_sql import TIME_RANGE_YEARS
from ingest.paths import expand_paths as expand_any
from ingest.store import Reject

SUFFIXES = (".json", ".ndjson", ".jsonl", ".json.gz", ".ndjson.gz", ".jsonl.gz", ".csv", ".csv.gz")
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


# Memory cap (issue 27): a file whose content (decompressed) is at most this many bytes is parsed whole
# (orjson, fastest); a bigger one is streamed: NDJSON line by line, a JSON array or Graph page ({"value": [...]})
# item by item, so memory stays near this size whatever the file expands to (a 4.5 MB .json.gz of 1 GiB took
# 2.1 GB). A single event bigger than the cap is rejected. PROVLENS_FILES_MAX_DOC_MB overrides the default.
DEFAULT_MAX_DOC_MB = 64
READ_CHUNK = 1 << 20


def max_doc_bytes() -> int:
    import os

    value = os.environ.get("PROVLENS_FILES_MAX_DOC_MB", "")
    try:
        mb = float(value) if value else DEFAULT_MAX_DOC_MB
    except ValueError:
        mb = DEFAULT_MAX_DOC_MB
    return max(int(mb * 1024 * 1024), 4096)


def text_encoding(head: bytes) -> str | None:
    """UTF-16 from its BOM or, without one, from the zero bytes of ASCII text (Windows PowerShell's ``> file``
    writes UTF-16LE); None for UTF-8 (with or without its BOM, which the readers skip)."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if len(head) >= 2 and head[0] and not head[1]:
        return "utf-16-le"
    if len(head) >= 2 and not head[0] and head[1]:
        return "utf-16-be"
    return None


def open_any(path: str):
    """The file's content as a binary UTF-8 stream (decompressed when it starts with the gzip magic, transcoded
    when it is UTF-16)."""
    with open(path, "rb") as fh:
        head = fh.read(2)
    fh = gzip.open(path, "rb") if head == b"\x1f\x8b" else open(path, "rb")
    try:
        first = fh.peek(4)[:4] if hasattr(fh, "peek") else b""
    except (OSError, EOFError):
        first = b""
    encoding = text_encoding(first)
    if encoding is None:
        return fh
    return codecs.EncodedFile(fh, "utf-8", encoding, errors="replace")


def read_upto(fh, size: int) -> bytes:
    """Up to ``size`` bytes, fewer only at the end (a transcoding stream may return less than asked per read)."""
    parts, got = [], 0
    while got < size:
        chunk = fh.read(size - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def read_bytes(path: str) -> bytes:
    with open_any(path) as fh:
        return fh.read()


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
    return (isinstance(obj, dict) and isinstance(obj.get("id"), str) and "activityDateTime" in obj
            and not shapes.needs_canonical(obj))


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
    """An event dict ready to stage (``obj`` itself when it is a Graph event), or the reason it cannot be one."""
    try:
        obj = shapes.to_event(obj)
    except shapes.ShapeError as exc:
        return None, str(exc)
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


def scan_file(path: str, sink, *, limit: int | None = None) -> FileScan:
    """Read one file, write each good event to ``sink`` (a binary file) and collect the rejects. A file over
    ``limit`` bytes (default :func:`max_doc_bytes`) is streamed, never held whole."""
    scan = FileScan(path=path)
    limit = limit or max_doc_bytes()
    try:
        fh = open_any(path)
    except OSError as exc:
        scan.fatal = f"cannot read file: {exc}"
        return scan
    with fh:
        try:
            data = read_upto(fh, limit + 1)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            scan.fatal = f"cannot read file: {exc}"
            return scan
        emit = _emitter(path, scan, sink)
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        if looks_like_csv(data):
            _scan_csv(path, data, fh, scan, emit)
            return scan
        if len(data) > limit:
            _scan_stream(path, data, fh, scan, emit, limit)
            return scan
    stripped = data.lstrip()
    if not stripped:
        scan.fatal = "file is empty"
        return scan
    try:
        doc = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        doc = _NOT_JSON
    if doc is not _NOT_JSON:
        _scan_document(doc, scan, emit)
        return scan
    _scan_text_fallback(path, stripped, scan, emit)
    return scan


def _container(doc: dict, name: str) -> list | None:
    """``doc[name]`` (any key case) when it is a list."""
    for k, v in doc.items():
        if k.lower() == name and isinstance(v, list):
            return v
    return None


def _scan_document(doc: object, scan: FileScan, emit) -> None:
    """One parsed JSON document: a Graph page, an array, an Event Hub message, a Logs API result or one record."""
    if isinstance(doc, list):
        for i, item in enumerate(doc):
            emit(f"item[{i}]", item)
    elif not isinstance(doc, dict):
        scan.fatal = "JSON document holds no events (expected {\"value\": [...]}, an array or NDJSON)"
    elif isinstance(doc.get("value"), list):
        for i, item in enumerate(doc["value"]):
            emit(f"value[{i}]", item)
    elif (records := _container(doc, "records")) is not None:  # an Event Hub message from diagnostic settings
        for i, item in enumerate(records):
            emit(f"records[{i}]", item)
    elif (tables := _container(doc, "tables")) is not None:  # the Log Analytics query API's result
        for t, table in enumerate(tables):
            if not isinstance(table, dict):
                continue
            columns, rows = shapes.table_rows(table)
            for r, row in enumerate(rows):
                record = dict(zip(columns, row)) if isinstance(row, list) else row
                emit(f"tables[{t}].rows[{r}]", record)
    elif any(k.lower() in ("id", "properties") for k in doc):
        emit("document", doc)
    else:
        scan.fatal = ("JSON document holds no events (expected a Graph page {\"value\": [...]}, an array, NDJSON, "
                      "diagnostic-settings records, an Event Hub {\"records\": [...]} or a Log Analytics result)")


def looks_like_csv(data: bytes) -> bool:
    """A Log Analytics CSV export: a header row naming ``Id`` and ``TimeGenerated`` (the portal's ``[UTC]``)."""
    head = data.lstrip()[:1]
    if not head or head in b"{[":
        return False
    first = data.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    try:
        names = {shapes.column_key(n) for n in next(csv.reader([first]))}
    except (csv.Error, StopIteration):
        return False
    return "id" in names and "timegenerated" in names


def _scan_csv(path: str, head: bytes, fh, scan: FileScan, emit) -> None:
    """A Log Analytics CSV export, streamed row by row (a field may hold line breaks inside quotes)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def lines() -> Iterator[str]:
        pending = decoder.decode(head)
        while True:
            parts = pending.splitlines(keepends=True)
            pending = parts.pop() if parts and not parts[-1].endswith(("\n", "\r")) else ""
            yield from parts
            more = fh.read(READ_CHUNK)
            if not more:
                pending += decoder.decode(b"", final=True)
                if pending:
                    yield pending
                return
            pending += decoder.decode(more)

    try:
        reader = csv.DictReader(lines())
        for row in reader:
            if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                continue
            emit(f"line {reader.line_num}", {k: v for k, v in row.items() if k is not None})
    except csv.Error as exc:
        scan.rejects.append(Reject(path, "line -", f"not valid CSV: {exc}"))
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        scan.rejects.append(Reject(path, "-", f"compressed file is truncated or corrupt ({exc}); the events "
                                              "before this point were loaded"))


def _emitter(path: str, scan: FileScan, sink):
    def emit(position: str, obj: object, text: bytes | None = None) -> None:
        """Stage one event; ``text`` is its original JSON when it can be staged as it came."""
        event, reason = _normalise_event(obj)
        if reason:
            scan.rejects.append(Reject(path, position, reason, orjson.dumps(obj).decode()[:200]))
            return
        body = text if (text is not None and event is obj) else orjson.dumps(event)
        sink.write(b'{"pos":' + orjson.dumps(f"{path}#{position}") + b',"raw":' + body + b"}\n")
        scan.events += 1

    return emit


_SKIP = re.compile(r"[\s,]*")


def _scan_stream(path: str, head: bytes, fh, scan: FileScan, emit, limit: int) -> None:
    """A file bigger than ``limit``: NDJSON line by line, or an array / Graph page item by item."""
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    head = head.lstrip()
    first_line = head.split(b"\n", 1)[0].strip()
    try:
        is_ndjson = isinstance(orjson.loads(first_line), dict)
    except orjson.JSONDecodeError:
        is_ndjson = False
    try:
        if is_ndjson:
            _stream_ndjson(path, head, fh, scan, emit, limit)
            return
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        text = decoder.decode(head)
        if text.startswith("["):
            start, label = 0, "item"
        else:
            key, label = text.find('"value"'), "value"
            if key < 0:
                key, label = text.find('"records"'), "records"
            bracket = text.find("[", key) if key >= 0 else -1
            if bracket < 0:
                scan.fatal = (f"not NDJSON, a JSON array or a Graph page, and bigger than the "
                              f"{limit // (1 << 20)} MB a single JSON document may be (convert it to NDJSON)")
                scan.rejects.append(Reject(path, "byte 0", scan.fatal, text[:200]))
                return
            start = bracket
        for index, obj, problem in _stream_items(text, start + 1, fh, decoder, limit):
            if problem:
                scan.rejects.append(Reject(path, f"{label}[{index}]", problem))
            else:
                emit(f"{label}[{index}]", obj)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        scan.rejects.append(Reject(path, "-", f"compressed file is truncated or corrupt ({exc}); the events "
                                              "before this point were loaded"))


def _stream_ndjson(path: str, head: bytes, fh, scan: FileScan, emit, limit: int) -> None:
    lineno = 0

    def lines() -> Iterator[bytes]:
        pending = head
        while True:
            cut = pending.rfind(b"\n")
            if cut >= 0:
                yield from pending[:cut].split(b"\n")
                pending = pending[cut + 1:]
            more = fh.read(READ_CHUNK)
            if not more:
                if pending:
                    yield pending
                return
            if len(pending) > limit:  # one line over the cap: never held whole
                yield None
                pending = b""
                while more and b"\n" not in more:
                    more = fh.read(READ_CHUNK)
                more = more[more.find(b"\n") + 1:] if more else b""
            pending += more

    for line in lines():
        lineno += 1
        if line is None:
            scan.rejects.append(Reject(path, f"line {lineno}", f"line longer than the {limit // (1 << 20)} MB cap"))
            continue
        _ndjson_line(path, lineno, line, scan, emit)


def _ndjson_line(path: str, lineno: int, line: bytes, scan: FileScan, emit) -> None:
    """One NDJSON line: an event to emit, a reject with its position, or nothing (a blank line)."""
    line = line.strip()
    if not line:
        return
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        scan.rejects.append(Reject(path, f"line {lineno}", f"invalid JSON: {exc}", line[:200].decode(
            "utf-8", errors="replace")))
        return
    records = _container(obj, "records") if isinstance(obj, dict) else None
    if records is not None:  # an Event Hub capture: one message per line
        for i, item in enumerate(records):
            emit(f"line {lineno} records[{i}]", item)
        return
    emit(f"line {lineno}", obj, line)


def _stream_items(text: str, i: int, fh, decoder, limit: int) -> Iterator[tuple[int, object | None, str | None]]:
    """Items of a JSON array whose ``[`` ends just before ``text[i]``, reading ``fh`` as needed; a buffer of
    about one item (at most ``limit`` characters) is held."""
    index, eof = 0, False

    def more(want: int) -> bool:
        nonlocal text, i, eof
        if eof:
            return False
        chunk = fh.read(max(want, READ_CHUNK))
        if not chunk:
            eof = True
            text, i = text[i:] + decoder.decode(b"", final=True), 0
            return bool(text)
        text, i = text[i:] + decoder.decode(chunk), 0
        return True

    while True:
        i = _SKIP.match(text, i).end()
        if i >= len(text):
            if not more(READ_CHUNK):
                return  # cut between items: every complete item was read
            continue
        if text[i] == "]":
            return
        try:
            obj, end = _DECODER.raw_decode(text, i)
            if end == len(text) and not eof and not isinstance(obj, (dict, list)):
                raise json.JSONDecodeError("may continue", text, end)  # a number cut at the buffer's end
        except json.JSONDecodeError as exc:
            if len(text) - i > limit:
                yield index, None, (f"item bigger than the {limit // (1 << 20)} MB cap; the rest of the array was not "
                                    "read (convert the file to NDJSON, or raise PROVLENS_FILES_MAX_DOC_MB)")
                return
            if more(len(text) - i):  # incomplete so far: read as much again (linear in the item's size)
                continue
            yield index, None, f"truncated or invalid JSON at character {exc.pos}: {exc.msg}"
            return
        yield index, obj, None
        index += 1
        i = end


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
            _ndjson_line(path, lineno, line, scan, emit)
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
        scan.fatal = ("not JSON, NDJSON, a Graph page or a Log Analytics CSV (a header with Id and TimeGenerated): "
                      "no events found")
        scan.rejects.append(Reject(path, "byte 0", scan.fatal, text[:200]))
        return
    label = "item" if start == 0 else "value"
    for index, obj, problem in _salvage_items(text, start):
        if problem:
            scan.rejects.append(Reject(path, f"{label}[{index}]", problem, text[-200:]))
        else:
            emit(f"{label}[{index}]", obj)
