"""Faulty variants of the SCIM audit trail for reject tests: the good records plus injected bad lines,
with the list of what a reader must reject (line number and kind) and what it must load.

    expected = write_faulty_trail(sim.scim_records, path, seed=1)
    expected["rejects"]   # [{"line": 17, "kind": "invalid_json"}, ...]
    expected["loaded"]    # request ids that must load, each exactly once
    expected["pending"]   # the request id of the unfinished last line (no newline yet), or None
"""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

from .scim import FIELDS

# kind -> the start of the reason provlens gives (the reject table's contract).
REASONS = {
    "invalid_json": "invalid JSON",
    "bad_status": "wrong type for 'status'",
    "bad_ts": "wrong type for 'ts'",
    "missing_field": "missing required field",
    "non_utf8": "invalid UTF-8",
    "huge_line": "line too long",
    "not_object": "not a JSON object",
    "csv_short_row": "CSV row has",
}
HUGE_LINE_BYTES = 5 * 1024 * 1024


def _line(rec: dict) -> bytes:
    return json.dumps(rec, ensure_ascii=False, separators=(",", ":")).encode()


def _bad_line(kind: str, rec: dict) -> bytes:
    rec = dict(rec, request_id=rec["request_id"] + "-bad")
    if kind == "invalid_json":
        return _line(rec)[:-7]
    if kind == "bad_status":
        return _line(dict(rec, status="abc"))
    if kind == "bad_ts":
        return _line(dict(rec, ts="yesterday afternoon"))
    if kind == "missing_field":  # not request_id: a line without one is keyed by its position (issue 22)
        rec.pop("method")
        return _line(rec)
    if kind == "non_utf8":
        return _line(dict(rec, user_name="PLACEHOLDER")).replace(b"PLACEHOLDER", b"j\xe9r\xf4me\xff")
    if kind == "huge_line":
        return _line(dict(rec, error_detail="x" * HUGE_LINE_BYTES))
    if kind == "not_object":
        return b'["' + rec["request_id"].encode() + b'"]'
    raise ValueError(kind)


def write_faulty_trail(records: list[dict], path: str | Path, *, seed: int = 0, every: int = 25,
                       unfinished_tail: bool = True) -> dict:
    """JSON Lines with a BOM, CRLF endings on some lines, blank lines and one bad line of each kind
    (cycling) after every ``every`` good ones; optionally an unfinished last line."""
    rng = random.Random(seed)
    kinds = [k for k in REASONS if k != "csv_short_row"]
    out = bytearray(b"\xef\xbb\xbf")
    line_no = 0
    rejects, loaded = [], []
    body = records[:-1] if unfinished_tail else records
    for i, rec in enumerate(body):
        if i and i % every == 0:
            kind = kinds[(i // every - 1) % len(kinds)]
            line_no += 1
            out += _bad_line(kind, rec) + b"\n"
            rejects.append({"line": line_no, "kind": kind})
        if rng.random() < 0.03:
            line_no += 1
            out += b"   \r\n" if rng.random() < 0.5 else b"\n"
        line_no += 1
        out += _line(rec) + (b"\r\n" if rng.random() < 0.2 else b"\n")
        loaded.append(rec["request_id"])
    pending = None
    if unfinished_tail and records:
        out += _line(records[-1])  # still being written: no newline
        pending = records[-1]["request_id"]
    Path(path).write_bytes(bytes(out))
    return {"rejects": rejects, "loaded": loaded, "pending": pending}


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def write_csv_trail(records: list[dict], path: str | Path, *, drop_column: str | None = None,
                    short_rows: tuple[int, ...] = ()) -> dict:
    """The same records as CSV (lists joined with ';'). ``drop_column`` leaves a column out of the
    header and every row; ``short_rows`` (indexes into records) lose their last cell."""
    columns = [c for c in FIELDS if c != drop_column]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    rejects, loaded = [], []
    for i, rec in enumerate(records):
        row = [_csv_cell(rec.get(c)) for c in columns]
        if i in short_rows:
            row = row[:-1]
            rejects.append({"line": i + 2, "kind": "csv_short_row"})
        else:
            loaded.append(rec["request_id"])
        writer.writerow(row)
    Path(path).write_text(buf.getvalue(), encoding="utf-8")
    return {"rejects": rejects, "loaded": loaded, "pending": None}
