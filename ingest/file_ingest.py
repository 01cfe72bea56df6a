"""``python -m ingest files``: load Graph-style JSON exports through the one store write path."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import duckdb

from ingest import emptiness, exitcodes
from ingest.dbfile import disk_full
from ingest.files import expand_paths, looks_like_clean_ndjson, scan_file
from ingest.loading import StagingFile, load_staged
from ingest.progress import progress
from ingest.store import DirtyInput, LoadResult, Reject, Store

BATCH_EVENTS = 200_000


@dataclass
class FilesOutcome:
    files: int = 0
    unreadable: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # paths given that matched nothing (named in the summary)
    loaded: LoadResult = field(default_factory=LoadResult)
    rejected: int = 0
    run_id: int | None = None
    backup: str | None = None  # ingest demo --force: the copy of the store it replaced
    warning: str | None = None  # most loaded events lack a status, service principal or identity (ingest.emptiness)

    @property
    def exit_code(self) -> int:
        if self.loaded.read - self.loaded.invalid == 0 and (self.rejected or self.unreadable or self.files == 0):
            return exitcodes.FAILED
        return exitcodes.OK


def _add(total: LoadResult, part: LoadResult) -> None:
    total.read += part.read
    total.new += part.new
    total.updated += part.updated
    total.invalid += part.invalid


def ingest_files(db_path: str, paths: list[str], *, source: str = "files", quiet: bool = False,
                 extra_rejects: list[Reject] | None = None) -> FilesOutcome:
    """Scan every file (no database lock held), then load in batches of ``BATCH_EVENTS``."""
    files, missing = expand_paths(paths)
    outcome = FilesOutcome(files=len(files))
    rejects: list[Reject] = list(extra_rejects or [])
    for m in missing:
        rejects.append(Reject(m, "-", "no such file, directory or glob match"))
        outcome.unreadable.append(m)
        outcome.missing.append(m)
    # The files are loaded in the order given (KEEP_LATER_COPY in ingest/store.py: between two copies of an event
    # with the same time, the later file's wins): staged batches, cut before and after each clean NDJSON file that
    # DuckDB loads directly.
    plan: list[StagingFile | str] = [StagingFile()]
    batches: list[StagingFile] = [plan[0]]

    def new_batch() -> StagingFile:
        batch = StagingFile()
        plan.append(batch)
        batches.append(batch)
        return batch

    def scan_into(path: str, batch: StagingFile) -> None:
        scan = scan_file(path, batch)
        rejects.extend(scan.rejects)
        if scan.fatal:
            outcome.unreadable.append(path)
            if not scan.rejects:
                rejects.append(Reject(path, "-", scan.fatal))

    try:
        for path in progress(files, desc="reading files", unit="file", disable=quiet):
            if looks_like_clean_ndjson(path):
                plan.append(path)
                new_batch()
                continue
            scan_into(path, batches[-1])
            if batches[-1].count >= BATCH_EVENTS:
                new_batch()
        # The write lock is held only from here on: for the bulk loads, not for reading the files.
        with Store.open(db_path) as store:
            run_id = store.start_run(source, scope=None)
            outcome.run_id = run_id
            for step in progress(list(plan), desc="loading", unit="batch", disable=quiet):
                if isinstance(step, StagingFile):
                    _add(outcome.loaded, load_staged(store, step, run_id=run_id, order=files))
                    continue
                try:  # fast path: DuckDB parses the whole file; any bad line sends it down the slow path
                    _add(outcome.loaded, store.load_clean_ndjson(step, run_id=run_id))
                except (DirtyInput, duckdb.Error) as exc:
                    if disk_full(exc):  # no room to write: the slow path would meet the same
                        raise
                    batch = StagingFile()
                    batches.append(batch)
                    scan_into(step, batch)
                    _add(outcome.loaded, load_staged(store, batch, run_id=run_id, order=files))
            store.add_rejects(run_id, source, rejects)
            outcome.rejected = len(rejects) + outcome.loaded.invalid
            result = "success" if not outcome.rejected else ("partial" if outcome.loaded.read else "failed")
            outcome.warning = emptiness.warning_for(*store.run_event_gaps(run_id))
            message = _summary(outcome) + (f"\n{outcome.warning}" if outcome.warning else "")
            store.finish_run(run_id, result, message=message, pages=len(files),
                             records_read=outcome.loaded.read + len(rejects) - len(outcome.unreadable),
                             records_new=outcome.loaded.new, records_updated=outcome.loaded.updated,
                             records_rejected=outcome.rejected)
    finally:
        for batch in batches:
            batch.discard()
    return outcome


def named(paths: list[str], most: int = 3) -> str:
    """``a, b, c and 2 more``: the first few of ``paths`` for a summary line."""
    shown = ", ".join(paths[:most])
    return shown + (f" and {len(paths) - most} more" if len(paths) > most else "")


def _summary(outcome: FilesOutcome) -> str:
    r = outcome.loaded
    text = (f"{outcome.files} file(s): {r.read - r.invalid} event(s) loaded ({r.new} new, {r.updated} updated, "
            f"{r.unchanged} unchanged), {outcome.rejected} rejected")
    if outcome.missing:
        text += f" (not found: {named(outcome.missing)})"
    return text


def print_report(outcome: FilesOutcome, db_path: str, stream=sys.stderr) -> None:
    print(f"ingest files: {_summary(outcome)} -> {db_path}", file=stream)
    if outcome.warning:
        print(outcome.warning, file=stream)
    if outcome.rejected:
        print(f"warning: {outcome.rejected} record(s) rejected; see them with "
              f"`python -m queries export ingest-rejects --out rejects.csv` (run {outcome.run_id})",
              file=stream)
