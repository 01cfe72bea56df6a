"""Which format an audit-trail file is in, decided from its content (never from its name alone).

The first non-blank lines (up to :data:`SNIFF_LINES`) are looked at in order, and the first one that is
recognised decides: a JSON object (``json``), a CSV header (``csv``: the first line only, with name-like
columns, in a ``.csv`` file or naming at least two of the fields the mapping reads), an Apache/nginx
``combined`` or ``common`` access log line, or the mapping's ``regex``. A mapping with a ``format`` names
the one format its files must show. A file none of whose first lines is recognised is ``unknown``, with the
reason and the fix, unless its name promises a trail format (``.jsonl``, ``.ndjson``, ``.json``, ``.csv``): it
is then read as that, and each bad line is rejected with its own reason. A file is never read as CSV by default
(before, a plain-text log became a CSV file whose first line was the header and every other line a reject).
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import zlib
from dataclasses import dataclass

from ingest.scim.filestate import open_stream
from ingest.scim.mapping import Mapping
from ingest.scim.parse import clean_line
from ingest.scim.textlog import BUILT_IN, matches

SNIFF_LINES = 8
SNIFF_LINE_BYTES = 64 * 1024
# Fields whose source names identify a CSV header as an audit trail's.
_HEADER_FIELDS = ("ts", "request_id", "method", "path", "url", "status")
_HEADER_NAME = re.compile(r"^[A-Za-z_][\w.\-@$ ]{0,99}$")
FIX = ('for another layout, write a mapping with format = "regex" and a pattern of named groups '
       '(README: "The SCIM server\'s audit trail")')


@dataclass
class Detected:
    """A file's format (``None``: not decided: no complete non-blank line yet) or why it is none we read."""

    format: str | None
    reason: str | None = None  # set when the content is in no format we read
    line: int = 0  # the line that decided (or the first non-blank one, for a reason)
    excerpt: bytes = b""


def sample_lines(path: str) -> list[tuple[int, bytes]]:
    """The first non-blank complete lines (number, cleaned bytes; at most :data:`SNIFF_LINE_BYTES` each)."""
    out: list[tuple[int, bytes]] = []
    try:
        with open_stream(path) as fh:
            gz = isinstance(fh, gzip.GzipFile)
            number = 0
            while len(out) < SNIFF_LINES:
                raw = fh.readline(SNIFF_LINE_BYTES)
                if not raw:
                    break
                number += 1
                if not raw.endswith(b"\n"):
                    if len(raw) < SNIFF_LINE_BYTES and not gz:
                        break  # an unfinished last line: not judged yet
                    while raw and not raw.endswith(b"\n"):  # skip the rest of a very long line
                        raw = fh.readline(SNIFF_LINE_BYTES)
                    out.append((number, b""))  # too long to judge here: counts as not recognised
                    continue
                line = clean_line(raw)
                if line:
                    out.append((number, line))
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error):
        pass  # the read itself reports a corrupt file with its position
    return out


def _csv_header(line: bytes, path: str, mapping: Mapping) -> bool:
    """A CSV header: several name-like columns, in a .csv file or naming two of the fields the mapping reads."""
    try:
        columns = [c.strip() for c in next(csv.reader(io.StringIO(line.decode("utf-8"))), [])]
    except (UnicodeDecodeError, csv.Error):
        return False
    if len(columns) < 2 or not all(_HEADER_NAME.match(c) for c in columns):
        return False
    if ".csv" in path.lower():
        return True
    known = {name for f in _HEADER_FIELDS for name in mapping.source_names(f)}
    return len(known & set(columns)) >= 2


def _is(fmt: str, number: int, line: bytes, path: str, mapping: Mapping, first: bool) -> bool:
    if fmt == "json":
        return line.startswith(b"{")
    if fmt == "csv":
        return first and _csv_header(line, path, mapping)
    pattern = mapping.pattern if fmt == "regex" else BUILT_IN[fmt]
    return pattern is not None and matches(line, pattern, fmt)


def _named_format(path: str) -> str | None:
    """The format a trail's file name promises (``.jsonl``, ``.ndjson``, ``.json``: json; ``.csv``: csv)."""
    name = os.path.basename(path).lower()
    if ".csv" in name:
        return "csv"
    return "json" if any(h in name for h in (".jsonl", ".ndjson", ".json")) else None


def detect(path: str, mapping: Mapping, lines: list[tuple[int, bytes]] | None = None) -> Detected:
    """The format of ``path`` (see the module's docstring); ``lines`` are its sampled lines when already read."""
    lines = sample_lines(path) if lines is None else lines
    if not lines:
        return Detected(mapping.format)
    candidates = (mapping.format,) if mapping.format else ("json", "csv", "combined", "common")
    for i, (number, line) in enumerate(lines):
        for fmt in candidates:
            if line and _is(fmt, number, line, path, mapping, first=i == 0):
                return Detected(fmt, line=number)
    named = _named_format(path)
    if named and not mapping.format:  # a .jsonl/.csv of bad lines: read as named, each bad line rejected with why
        return Detected(named, line=lines[0][0])
    number, line = lines[0]
    shown = f"line {number}" if len(lines) == 1 else f"lines {number}-{lines[-1][0]}"
    if mapping.format:
        what = {"json": "a JSON object", "csv": "a CSV header row", "combined": "a combined access log line",
                "common": "a common access log line", "regex": "matched by the mapping's pattern"}[mapping.format]
        reason = (f"not in the mapping's format ({mapping.format}): {shown} "
                  f"{'is not' if len(lines) == 1 else 'are not'} {what}; check format"
                  f"{' and pattern' if mapping.format == 'regex' else ''} in {mapping.source}")
    else:
        reason = (f"not a known SCIM log format: {shown} {'is' if len(lines) == 1 else 'are'} neither JSON, "
                  f"a CSV header naming our fields, nor an Apache/nginx combined or common access log; {FIX}")
    return Detected(None, reason, number, line)
