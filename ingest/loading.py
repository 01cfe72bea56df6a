"""Staging and bulk loading shared by the file, demo and Graph sources (and the Graph directory audit log).

Sources write ``{"pos": ..., "raw": <event>}`` lines to a :class:`StagingFile`; :func:`load_staged`
hands the whole file to the store in one transaction (DuckDB parses it, not Python).
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime

from ingest.store import LoadResult, Store

# Each line parsed once (read_json_objects and then ->'$.raw' and ->>'$.pos' parsed it three times and
# wrote the raw event back out once more). Same text: DuckDB serialises the ``raw`` value the same way
# both times; only a JSON null comes back as SQL NULL here, so it is turned back into JSON 'null'
# (every staged line has a "raw" key; the store rejects a null event as having no id).
STAGED_SOURCE = ("SELECT coalesce(raw, 'null'::JSON) AS raw, pos FROM read_json($path, format = 'newline_delimited', "
                 "columns = {pos: 'VARCHAR', raw: 'JSON'})")


# A Graph page whose events are all kept is staged as the body Graph sent, with the page's label put in
# front: one line {"pos": "<page label>", "@odata.context": ..., "value": [events], ...} (no re-serialising
# in Python: B1); the events are numbered here, "<page label>#value[i]" as if staged one by one. Both kinds
# of line may share a file.
PAGED_SOURCE = (
    "SELECT unnest(CASE WHEN value IS NULL THEN [coalesce(raw, 'null'::JSON)] ELSE value END) AS raw, "
    "unnest(CASE WHEN value IS NULL THEN [pos] ELSE list_transform(range(len(value)), "
    "lambda i: pos || '#value[' || i || ']') END) AS pos "
    "FROM read_json($path, format = 'newline_delimited', maximum_object_size = 67108864, "
    "columns = {pos: 'VARCHAR', raw: 'JSON', value: 'JSON[]'})")
PAGE_LINE_MAX = 48 * 1024 * 1024  # bigger pages are staged event by event (under maximum_object_size)


STALE_AFTER_S = 6 * 3600
_PREFIXES = ("provlens-stage-", "provlens-scim-", "provlens-blob-")


def remove_stale_staging(directory: str | None = None, *, older_than_s: float = STALE_AFTER_S) -> int:
    """Delete staging files a killed run left behind (only ours, only old ones); returns how many."""
    import time

    folder = directory or tempfile.gettempdir()
    removed = 0
    now = time.time()
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    for name in names:
        if not name.startswith(_PREFIXES) or not name.endswith(".ndjson"):
            continue
        path = os.path.join(folder, name)
        try:
            if now - os.stat(path).st_mtime > older_than_s:
                os.unlink(path)
                removed += 1
        except OSError:
            pass
    return removed


class StagingFile:
    """A temporary NDJSON file of staged events; remove it with :meth:`discard`."""

    def __init__(self, directory: str | None = None):
        fd, self.path = tempfile.mkstemp(prefix="provlens-stage-", suffix=".ndjson", dir=directory)
        self.fh = os.fdopen(fd, "wb")
        self.count = 0
        self.paged = False  # holds a whole-page line (PAGED_SOURCE reads it)

    def write(self, line: bytes, count: int | None = None, *, page: bool = False) -> None:
        """Append staged lines; ``count``: the events they hold (default: one per line)."""
        self.write_parts((line,), line.count(b"\n") if count is None else count, page=page)

    def write_parts(self, parts: tuple[bytes | memoryview, ...], count: int, *, page: bool = False) -> None:
        """Append one staged line given in pieces (written as they are, not joined into a copy first)."""
        self.fh.writelines(parts)
        self.count += count
        self.paged = self.paged or page

    def close(self) -> None:
        if not self.fh.closed:
            self.fh.close()

    def discard(self) -> None:
        self.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def staged_source(staging: StagingFile | list[StagingFile]) -> tuple[str, dict] | None:
    """The store's source relation (SQL, parameters) over what was staged so far (the files are closed), or None
    when nothing was."""
    files = staging if isinstance(staging, list) else [staging]
    for f in files:
        f.close()
    paths = [f.path for f in files if f.count]
    if not paths:
        return None
    return (PAGED_SOURCE if any(f.paged for f in files) else STAGED_SOURCE), {"path": paths}


def load_staged(store: Store, staging: StagingFile | list[StagingFile], *, run_id: int | None,
                watermark: tuple[str, str, datetime] | None = None,
                run_counters: dict[str, int] | None = None, likely_new: bool = False,
                defer_derived: bool = False, order: list[str] | None = None,
                into: str = "events") -> LoadResult:
    """Load everything staged so far (one file or several) in one transaction, with the watermark and the
    run's counters (``likely_new``, ``defer_derived``, ``order``: see ``Store.load_events``). ``into``:
    ``events`` (provisioning events) or ``directory_audits`` (directory audit entries, ``Store.load_directory_audits``;
    the event-only options do not apply)."""
    source = staged_source(staging)
    if source is None:
        if watermark is not None:
            store.set_watermark(*watermark, run_id=run_id)
        if run_counters and run_id is not None:
            store.add_to_run(run_id, **run_counters)
        if not defer_derived and into == "events":  # a run's last commit may hold no rows: the deferred refresh
            store.refresh_pending_derived()
        return LoadResult()
    if into == "directory_audits":
        return store.load_directory_audits(*source, run_id=run_id, watermark=watermark, run_counters=run_counters)
    return store.load_events(*source, run_id=run_id, watermark=watermark, run_counters=run_counters,
                             likely_new=likely_new, defer_derived=defer_derived, order=order)
