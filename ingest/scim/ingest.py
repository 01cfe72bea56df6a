"""``python -m ingest scim PATH...``: load SCIM audit-trail files incrementally, then run the correlation.

Each file's format is decided from its content (:mod:`ingest.scim.detect`: JSON Lines, CSV, an Apache/nginx
access log, a mapping's regex); a file in none of them is rejected with the reason (or, found in a directory
under a name that does not promise a trail, listed as skipped). Each file is read from where the last run stopped
(see :mod:`ingest.scim.filestate`); good lines are typed by :mod:`ingest.scim.parse` (text lines first split by
:mod:`ingest.scim.textlog`) and staged as NDJSON, bad ones become rejects with file, line, reason
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
from ingest.scim.detect import detect
from ingest.scim.filestate import (
    FileState,
    Line,
    expand_paths,
    fallback_key,
    file_identity,
    find_resume_point,
    is_gzip,
    iter_lines,
    mtime_to_keep,
    open_stream,
    promises_trail,
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
from ingest.scim.textlog import BUILT_IN, decode_text_line
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
    skipped_files: list[tuple[str, str]] = field(default_factory=list)  # (file, why): found in a directory, no trail
    unmatched_skipped: int = 0  # text lines the format did not match, counted (options.unmatched_lines = "skip")
    unknown_files: list[tuple[str, str]] = field(default_factory=list)  # (file, why): rejected, in no format we read
    formats: Counter = field(default_factory=Counter)  # files read per detected format
    fallback_keys: int = 0  # lines keyed by their position (no usable request id)
    run_id: int | None = None
    correlation: dict | None = None
    strict: bool = False

    @property
    def exit_code(self) -> int:
        """As ``ingest files``: 1 when there was nothing to read, or nothing loaded and something was rejected
        (a line already loaded before counts as loaded); 7 with --strict and any reject; else 0."""
        if self.files - len(self.skipped_files) == 0:
            return exitcodes.FAILED
        if self.rejected and not (self.new or self.duplicates):
            return exitcodes.FAILED
        if self.rejected and self.strict:
            return exitcodes.STRICT
        return exitcodes.OK


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
               outcome: ScimOutcome, by_path: dict[str, FileState] | None = None, *,
               in_directory: bool = False) -> None:
    st = os.stat(path)
    known = (by_path or {}).get(path)
    if unchanged_since_read(known, st):  # a no-op rerun: a stat per file, no open, no database write
        outcome.unchanged += 1
        if known.byte_offset < st.st_size and not path.lower().endswith(".gz"):
            outcome.unfinished_tail += 1
        return
    now_ns = time.time_ns()
    detected = detect(path, mapping)
    if detected.reason is not None:
        if in_directory and not promises_trail(path):
            outcome.skipped_files.append((path, detected.reason))
        else:  # named, matched by a glob, or a .jsonl/.csv/... that is none: rejected each run until fixed
            with Store.open(db_path) as store:
                store.add_rejects(run_id, SOURCE, [Reject(path, f"line {detected.line}", detected.reason,
                                                          _excerpt(detected.excerpt))])
            outcome.rejected += 1
            outcome.reasons["file in no format we read"] += 1
            outcome.unknown_files.append((path, detected.reason))
        return
    fmt = detected.format or "json"  # undecided: no complete non-blank line yet, nothing to read
    head = read_head(path)
    identity = file_identity(head)
    resume = find_resume_point(path, head, st.st_dev, st.st_ino, states)
    offset, line_no, header = 0, 0, None
    if resume is not None and resume.byte_offset > 0:
        offset, line_no = resume.byte_offset, resume.line_count
        header = json.loads(resume.csv_header) if resume.csv_header else None
    batch = _Batch()
    gz = is_gzip(path)
    if detected.format:
        outcome.formats[fmt] += 1
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
            reader = _LineReader(fmt, path, mapping, identity, outcome)
            try:
                for line in iter_lines(fh, offset, line_no, complete=gz):
                    outcome.lines += 1
                    header = reader.one(line, batch, header)
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


class _LineReader:
    """Stages or rejects the lines of one file in its detected format."""

    def __init__(self, fmt: str, path: str, mapping: Mapping, identity: str, outcome: ScimOutcome) -> None:
        self.fmt, self.path, self.mapping, self.identity, self.outcome = fmt, path, mapping, identity, outcome
        self.pattern = mapping.pattern if fmt == "regex" else BUILT_IN.get(fmt)

    def one(self, line: Line, batch: _Batch, header: list[str] | None) -> list[str] | None:
        """Stage or reject one line; returns the CSV header (read from the first line of a CSV file)."""
        position = f"line {line.number}"
        if line.data is None:
            batch.rejects.append(Reject(self.path, position, f"line too long ({line.length} bytes; the limit is "
                                                             f"{MAX_LINE_BYTES})", _excerpt(line.excerpt)))
            return header
        data = clean_line(line.data)
        if not data:
            return header  # blank lines are skipped silently
        keyed_by_position = False

        def fallback() -> str:
            nonlocal keyed_by_position
            keyed_by_position = True
            return fallback_key(self.identity, line)

        try:
            if self.fmt == "csv":
                if header is None:
                    return read_csv_header(data)
                obj = decode_csv_line(data, header)
            elif self.pattern is not None:
                try:
                    obj = decode_text_line(data, self.pattern, self.fmt)
                except LineRejected as exc:
                    if self.mapping.skip_unmatched and str(exc).startswith("line does not match"):
                        self.outcome.unmatched_skipped += 1
                        return header
                    raise
            else:
                obj = decode_json_line(data)
            record = normalise(obj, self.mapping, fallback)
        except LineRejected as exc:
            batch.rejects.append(Reject(self.path, position, str(exc), _excerpt(data)))
            return header
        self.outcome.fallback_keys += keyed_by_position
        record["source_file"] = self.path
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
    files, missing, in_directory = expand_paths(paths, follow_symlinks=follow_symlinks, skipped_links=skipped)
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
                _read_file(db_path, path, mapping, states, run_id, outcome, by_path,
                           in_directory=path in in_directory)
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
            result = ("failed" if failure or outcome.exit_code == exitcodes.FAILED
                      else "partial" if outcome.rejected else "success")  # as ingest files: nothing loaded = failed
            store.finish_run(run_id, result, message=failure or summary(outcome), pages=len(files),
                             records_read=outcome.lines, records_new=outcome.new,
                             records_rejected=outcome.rejected)
    return outcome


def summary(outcome: ScimOutcome) -> str:
    text = (f"{outcome.files} file(s), {outcome.lines} new line(s): {outcome.new} request(s) loaded, "
            f"{outcome.duplicates} already loaded, {outcome.rejected} rejected")
    if outcome.missing:
        from ingest.file_ingest import named

        text += f" (not found: {named(outcome.missing)})"
    if outcome.unfinished_tail:
        text += f", {outcome.unfinished_tail} unfinished last line(s) left for the next run"
    if outcome.unchanged:
        text += f", {outcome.unchanged} unchanged file(s) not opened"
    if outcome.fallback_keys:
        text += f", {outcome.fallback_keys} keyed by file and byte offset (no usable request_id)"
    if outcome.unmatched_skipped:
        text += f", {outcome.unmatched_skipped} line(s) not matching the pattern skipped"
    if outcome.skipped_files:
        text += f", {len(outcome.skipped_files)} file(s) skipped (not a SCIM log)"
    return text


def print_report(outcome: ScimOutcome, db_path: str, stream=sys.stderr) -> None:
    print(f"ingest scim: {summary(outcome)} -> {db_path}", file=stream)
    if outcome.skipped_links:
        shown = ", ".join(outcome.skipped_links[:5]) + (", ..." if len(outcome.skipped_links) > 5 else "")
        print(f"  skipped {len(outcome.skipped_links)} symbolic link(s) (not followed without --follow-symlinks): "
              f"{shown}", file=stream)
    for path, why in outcome.unknown_files[:10]:
        print(f"  rejected {path} ({why})", file=stream)
    if len(outcome.unknown_files) > 10:
        print(f"  ... and {len(outcome.unknown_files) - 10} more file(s) in no format we read", file=stream)
    if outcome.formats:
        print("  formats (from the content): " + ", ".join(f"{fmt} {n}" for fmt, n in sorted(outcome.formats.items()))
              + " file(s)", file=stream)
    if outcome.skipped_files:
        print(f"  skipped {len(outcome.skipped_files)} file(s) found in a directory whose content is not a SCIM log "
              "format we read:", file=stream)
        for path, why in outcome.skipped_files[:10]:
            print(f"    {path}: {why}", file=stream)
        if len(outcome.skipped_files) > 10:
            print(f"    ... and {len(outcome.skipped_files) - 10} more", file=stream)
    if outcome.resumed or outcome.restarted:
        print(f"  {outcome.resumed} file(s) continued where the last run stopped, "
              f"{outcome.restarted} read again from the start (new, rotated or truncated)", file=stream)
    if outcome.correlation:
        c = outcome.correlation
        classes = ", ".join(f"{k} {v}" for k, v in sorted(c["classes"].items()))
        print(f"  correlation: {classes} ({c['seconds']:.2f} s)", file=stream)
    if outcome.rejected:
        kinds = ", ".join(f"{kind}: {n}" for kind, n in outcome.reasons.most_common())
        level = "error" if outcome.exit_code == exitcodes.FAILED else "warning"
        print(f"{level}: {outcome.rejected} rejected ({kinds}); see them with "
              "`python -m queries export scim-rejects --out rejects.csv`", file=stream)


def run_scim_source(section: dict, db: str, args, log) -> int:
    """``python -m ingest run`` runner for a ``[[sources]]`` table with ``type = "scim"``::

        [[sources]]
        type = "scim"
        paths = ["/var/log/scim/audit.jsonl*"]
        mapping = "examples/mappings/json-access-log.toml"   # optional; or a [sources.mapping] table
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
