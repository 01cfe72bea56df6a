"""The manifest written beside every export (``FILE.manifest.json``) and ``verify`` against it.

A manifest says what the file holds (dataset, filters, columns, format), how to check it (row count,
SHA-256) and how fresh it was (newest activity in the data, last successful ingest per source).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
from datetime import datetime, timezone

MANIFEST_FORMAT = "provlens-export-manifest/1"
MANIFEST_SUFFIX = ".manifest.json"
CSV_FIELD_LIMIT = min(sys.maxsize, 2**63 - 1)  # a C long: the most csv.field_size_limit accepts


def manifest_path(path: str) -> str:
    return path + MANIFEST_SUFFIX


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build_manifest(*, dataset: str, file_name: str, fmt: str, filters: dict, rows: int, sha256: str,
                   escaped_cells: int, newest_activity_time: datetime | None,
                   last_successful_ingest: dict[str, datetime | None], columns: list[dict],
                   version: str) -> dict:
    return {
        "manifest_format": MANIFEST_FORMAT,
        "dataset": dataset,
        "file": file_name,
        "format": fmt,
        "filters": filters,
        "rows": rows,
        "sha256": sha256,
        "escaped_cells": escaped_cells,
        "escaping": ("text cells starting with = + - @ tab CR or LF are prefixed with ' (OWASP CSV injection)"
                     if fmt == "csv" else "none: Parquet keeps exact values"),
        "newest_activity_time": iso(newest_activity_time),
        "last_successful_ingest": {source: iso(t) for source, t in sorted(last_successful_ingest.items())},
        "generated_at": iso(datetime.now(timezone.utc)),
        "provlens_version": version,
        "columns": columns,
    }


def count_rows(path: str, fmt: str) -> int:
    """Data rows in the file (streaming: CSV records, not lines; Parquet from its footer)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    # Export writes cells of any size (an event's error text, a SCIM line's query: no cap), and Python's csv reader
    # refuses a field over 128 KiB by default, which failed an untouched export (issue 27): lift the limit to the
    # largest the csv module takes, for this read only (the limit is process-wide).
    previous = csv.field_size_limit(CSV_FIELD_LIMIT)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            return max(sum(1 for _ in reader) - 1, 0)
    finally:
        csv.field_size_limit(previous)


def verify(path: str) -> list[str]:
    """Problems found comparing ``path`` with its manifest; an empty list means the file is intact."""
    mpath = manifest_path(path)
    if not os.path.exists(path):
        return [f"{path} does not exist"]
    if not os.path.exists(mpath):
        return [f"no manifest {mpath} beside the file"]
    try:
        with open(mpath, encoding="utf-8") as fh:
            manifest = json.load(fh)
        expected_sha, expected_rows, fmt = manifest["sha256"], int(manifest["rows"]), manifest["format"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [f"manifest {mpath} is unreadable or incomplete ({exc})"]
    problems = []
    actual_sha = sha256_file(path)
    if actual_sha != expected_sha:
        problems.append(f"SHA-256 mismatch: the file has {actual_sha}, the manifest says {expected_sha} "
                        "(the file was changed after export)")
    try:
        actual_rows = count_rows(path, fmt)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a verification failure
        problems.append(f"cannot read the file as {fmt}: {exc}")
    else:
        if actual_rows != expected_rows:
            problems.append(f"row count mismatch: the file has {actual_rows}, the manifest says {expected_rows}")
    return problems
