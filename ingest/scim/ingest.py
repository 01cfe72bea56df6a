"""``python -m ingest scim PATH...``: load SCIM audit-trail files incrementally, then run the correlation.

Each file is read from where the last run stopped (see :mod:`ingest.scim.filestate`); good lines are
typed by :mod:`ingest.scim.parse` and staged as NDJSON, bad ones become rejects with file, line, reason
and excerpt. Every batch (rows + rejects + the file's new offset) commits in one transaction. The
database is opened only for those commits, never while a file is being read.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import tempfile
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field

import orjson

from ingest import exitcodes
from ingest.progress import progress
from ingest.scim.filestate import (
    FileState,
    Line,
    expand_paths,
    find_resume_point,
    is_gzip,
    iter_lines,
    mtime_to_keep,
    open_stream,
    read_head,
    seek_content,
    sha,
    unchanged_since_read,
)
from ingest.scim.mapping import DEFAULT_MAPPING, Mapping
from ingest.scim.parse import (
    MAX_LINE_BYTES,
    LineRejected,
    clean_line,
    decode_csv_line,
    decode_json_line,
    normalise,
    read_csv_header,
    redact,
)
from ingest.store import Reject, Store

BATCH_LINES = 100_000
SOURCE = "scim"


@dataclass
class ScimOutcome:
    files: int = 0
    missing: list[str] = field(default_factory=list)
    lines: int = 0  # complete lines read this run (blank ones included)
    new: int = 0
    duplicates: int = 0
    rejected: int = 0
    reasons: Counter = field(default_factory=Counter)
    resumed: int = 0  # files continued from a stored offset (incl. rotated ones found under a new name)
    restarted: int = 0  # files read from the start although a state existed for their path
    unfinished_tail: int = 0  # files whose last line has no newline yet (left for the next run)
    unchanged: int = 0  # files skipped unopened: same device, inode, size and mtime as after their last read
    skipped_links: list[str] = field(default_factory=list)  # symbolic links not followed (no --follow-symlinks)
    run_id: int | None = None
    correlation: dict | None = None
    strict: bool = False

    @property
    def exit_code(self) -> int:
        if self.files == 0:
            return exitcodes.FAILED
        if self.rejected and self.strict:
            return exitcodes.STRICT
        return exitcodes.OK


def file_format(path: str, mapping: Mapping, head: bytes) -> str:
    if mapping.format:
        return mapping.format
    name = path.lower()
    for suffix in (".gz", ".1", ".2", ".3"):
        name = name.removesuffix(suffix)
    if ".csv" in name:
        return "csv"
    if any(h in name for h in (".jsonl", ".ndjson", ".json")):
        return "json"
    first = clean_line(head.split(b"\n", 1)[0])
    return "json" if first.startswith(b"{") or not first else "csv"


class _Batch:
    """Good records staged as NDJSON plus the rejects, flushed together with the file's position."""

    def __init__(self) -> None:
        fd, self.path = tempfile.mkstemp(prefix="provlens-scim-", suffix=".ndjson")
        self.fh = os.fdopen(fd, "wb")
        self.count = 0
        self.rejects: list[Reject] = []

    def add(self, record: dict) -> None:
        self.fh.write(orjson.dumps(record) + b"\n")
        self.count += 1

    def flush(self, db_path: str, run_id: int, state: dict, outcome: ScimOutcome) -> None:
        self.fh.close()
        with Store.open(db_path) as store:
            new, dup = store.load_scim_batch(run_id, self.path if self.count else None, self.rejects, state)
        outcome.new += new
        outcome.duplicates += dup
        outcome.rejected += len(self.rejects)
        outcome.reasons.update(_reason_kind(r.reason) for r in self.rejects)
        os.unlink(self.path)

    def discard(self) -> None:
        if not self.fh.closed:
            self.fh.close()
        if os.path.exists(self.path):
            os.unlink(self.path)


def _reason_kind(reason: str) -> str:
    return reason.split(":", 1)[0].split(" (", 1)[0]


def _excerpt(data: bytes) -> str:
    return data[:200].decode("utf-8", errors="replace")


def _read_file(db_path: str, path: str, mapping: Mapping, states: list[FileState], run_id: int,
               outcome: ScimOutcome, by_path: dict[str, FileState] | None = None) -> None:
    st = os.stat(path)
    known = (by_path or {}).get(path)
    if unchanged_since_read(known, st):  # a no-op rerun: a stat per file, no open, no database write
        outcome.unchanged += 1
        if known.byte_offset < st.st_size and not path.lower().endswith(".gz"):
            outcome.unfinished_tail += 1
        return
    now_ns = time.time_ns()
    head = read_head(path)
    resume = find_resume_point(path, head, st.st_dev, st.st_ino, states)
    fmt = file_format(path, mapping, head)
    offset, line_no, header = 0, 0, None
    if resume is not None and resume.byte_offset > 0:
        offset, line_no = resume.byte_offset, resume.line_count
        header = json.loads(resume.csv_header) if resume.csv_header else None
    batch = _Batch()
    gz = is_gzip(path)
    try:
        with open_stream(path) as fh:
            if not seek_content(fh, offset):
                fh.seek(0)
                offset, line_no, header = 0, 0, None
            if offset:
                outcome.resumed += 1
            elif any(s.path == path for s in states):
                outcome.restarted += 1
            state = {"path": path, "device": st.st_dev, "inode": st.st_ino, "head_len": len(head),
                     "head_sha256": sha(head), "size": st.st_size, "byte_offset": offset, "line_count": line_no,
                     "csv_header": json.dumps(header) if header is not None else None}
            try:
                for line in iter_lines(fh, offset, line_no, complete=gz):
                    outcome.lines += 1
                    header = _one_line(line, fmt, path, mapping, batch, header)
                    state.update(byte_offset=line.end_offset, line_count=line.number,
                                 csv_header=json.dumps(header) if header is not None else None)
                    if batch.count + len(batch.rejects) >= BATCH_LINES:
                        batch.flush(db_path, run_id, dict(state), outcome)
                        batch = _Batch()
            except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
                batch.rejects.append(Reject(path, f"line {state['line_count'] + 1}",
                                            f"compressed file is truncated or corrupt ({exc}); "
                                            "the lines before this point were loaded"))
        # The whole file was read (to its end, or to an error re-reading would meet again): an unchanged stat
        # next time means nothing to read. Intermediate batches above keep no mtime: a run killed mid-file
        # must read the rest.
        state["mtime_ns"] = mtime_to_keep(st, now_ns)
        if not gz and os.path.getsize(path) > state["byte_offset"]:
            outcome.unfinished_tail += 1
        batch.flush(db_path, run_id, state, outcome)
    finally:
        batch.discard()


def _one_line(line: Line, fmt: str, path: str, mapping: Mapping, batch: _Batch,
              header: list[str] | None) -> list[str] | None:
    """Stage or reject one line; returns the CSV header (read from the first line of a CSV file)."""
    position = f"line {line.number}"
    if line.data is None:
        batch.rejects.append(Reject(path, position, f"line too long ({line.length} bytes; the limit is "
                                                    f"{MAX_LINE_BYTES})", _excerpt(line.excerpt)))
        return header
    data = clean_line(line.data)
    if not data:
        return header  # blank lines are skipped silently
    try:
        if fmt == "csv":
            if header is None:
                return read_csv_header(data)
            obj = decode_csv_line(data, header)
        else:
            obj = decode_json_line(data)
        record = normalise(obj, mapping)
    except LineRejected as exc:
        batch.rejects.append(Reject(path, position, str(exc), _excerpt(data)))
        return header
    record["source_file"] = path
    record["source_line"] = line.number
    record["raw"] = redact(obj)
    batch.add(record)
    return header


def ingest_scim(db_path: str, paths: list[str], *, mapping: Mapping = DEFAULT_MAPPING, strict: bool = False,
                quiet: bool = False, correlate: bool = True, window: tuple[float, float] | None = None,
                follow_symlinks: bool = False) -> ScimOutcome:
    """Load every file's new complete lines; then (by default) recompute the correlation. Symbolic links in a
    directory or matched by a glob are skipped (reported) unless ``follow_symlinks``."""
    skipped: list[str] = []
    files, missing = expand_paths(paths, follow_symlinks=follow_symlinks, skipped_links=skipped)
    outcome = ScimOutcome(files=len(files), missing=missing, strict=strict, skipped_links=skipped)
    with Store.open(db_path) as store:
        run_id = store.start_run(SOURCE, scope=None)
        states = [FileState(**s) for s in store.scim_file_states()]
        by_path = {s.path: s for s in states}
        if missing:
            store.add_rejects(run_id, SOURCE, [Reject(m, "-", "no such file, directory or glob match")
                                               for m in missing])
    outcome.run_id = run_id
    outcome.rejected += len(missing)
    outcome.reasons.update("no such file" for _ in missing)
    failure: str | None = None
    try:
        for path in progress(files, desc="reading SCIM audit files", unit="file", disable=quiet):
            try:
                _read_file(db_path, path, mapping, states, run_id, outcome, by_path)
            except OSError as exc:
                with Store.open(db_path) as store:
                    store.add_rejects(run_id, SOURCE, [Reject(path, "-", f"cannot read file: {exc.strerror or exc}")])
                outcome.rejected += 1
                outcome.reasons["cannot read file"] += 1
    except BaseException as exc:
        failure = f"stopped: {type(exc).__name__}"
        raise
    finally:
        with Store.open(db_path) as store:
            if failure is None and outcome.new and store.scim_resort_due():
                if not quiet:  # ~20 s per 10M requests
                    print("sorting the SCIM requests by userName for the per-identity lookups ...",
                          file=sys.stderr, flush=True)
                store.resort_scim_by_user()
            if correlate and failure is None:
                from ingest.correlate import correlate as run_correlation

                outcome.correlation = run_correlation(store, window=window)
            result = "failed" if failure else ("partial" if outcome.rejected else "success")
            store.finish_run(run_id, result, message=failure or summary(outcome), pages=len(files),
                             records_read=outcome.lines, records_new=outcome.new,
                             records_rejected=outcome.rejected)
    return outcome


def summary(outcome: ScimOutcome) -> str:
    text = (f"{outcome.files} file(s), {outcome.lines} new line(s): {outcome.new} request(s) loaded, "
            f"{outcome.duplicates} already loaded, {outcome.rejected} rejected")
    if outcome.unfinished_tail:
        text += f", {outcome.unfinished_tail} unfinished last line(s) left for the next run"
    if outcome.unchanged:
        text += f", {outcome.unchanged} unchanged file(s) not opened"
    return text


def print_report(outcome: ScimOutcome, db_path: str, stream=sys.stderr) -> None:
    print(f"ingest scim: {summary(outcome)} -> {db_path}", file=stream)
    if outcome.skipped_links:
        shown = ", ".join(outcome.skipped_links[:5]) + (", ..." if len(outcome.skipped_links) > 5 else "")
        print(f"  skipped {len(outcome.skipped_links)} symbolic link(s) (not followed without --follow-symlinks): "
              f"{shown}", file=stream)
    if outcome.resumed or outcome.restarted:
        print(f"  {outcome.resumed} file(s) continued where the last run stopped, "
              f"{outcome.restarted} read again from the start (new, rotated or truncated)", file=stream)
    if outcome.correlation:
        c = outcome.correlation
        classes = ", ".join(f"{k} {v}" for k, v in sorted(c["classes"].items()))
        print(f"  correlation: {classes} ({c['seconds']:.2f} s)", file=stream)
    if outcome.rejected:
        kinds = ", ".join(f"{kind}: {n}" for kind, n in outcome.reasons.most_common())
        print(f"warning: {outcome.rejected} line(s) rejected ({kinds}); see them with "
              "`python -m queries export scim-rejects --out rejects.csv`", file=stream)


def run_scim_source(section: dict, db: str, args, log) -> int:
    """``python -m ingest run`` runner for a ``[[sources]]`` table with ``type = "scim"``::

        [[sources]]
        type = "scim"
        paths = ["/var/log/scim/audit.jsonl*"]
        mapping = "examples/mappings/json-access-log.toml"   # optional
        strict = false                                        # optional
        window_seconds = 180                                  # optional correlation window
        follow_symlinks = false                               # optional: read symbolic links found
    """
    from ingest.config import ConfigError
    from ingest.scim.mapping import MappingError, load_mapping

    paths = section.get("paths") or ([section["path"]] if section.get("path") else [])
    if isinstance(paths, str):
        paths = [paths]
    if not paths:
        raise ConfigError('a scim source needs paths = ["..."]')
    try:
        mapping = load_mapping(section.get("mapping"))
    except MappingError as exc:
        raise ConfigError(str(exc)) from exc
    window = section.get("window_seconds")
    outcome = ingest_scim(db, list(paths), mapping=mapping, strict=bool(section.get("strict", False)),
                          quiet=bool(getattr(args, "quiet", False)),
                          window=(float(window), float(window)) if window is not None else None,
                          follow_symlinks=bool(section.get("follow_symlinks", False)))
    level = "summary" if outcome.exit_code == exitcodes.OK else "error"
    log.event("scim_done", f"ingest scim: {summary(outcome)}", level=level, run_id=outcome.run_id,
              exit_code=outcome.exit_code)
    return outcome.exit_code
