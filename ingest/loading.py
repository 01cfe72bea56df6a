"""Staging and bulk loading shared by the file, demo and Graph sources.

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


STALE_AFTER_S = 6 * 3600
_PREFIXES = ("provlens-stage-", "provlens-scim-")


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

    def write(self, line: bytes) -> None:
        self.fh.write(line)
        self.count += line.count(b"\n")

    def close(self) -> None:
        if not self.fh.closed:
            self.fh.close()

    def discard(self) -> None:
        self.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def load_staged(store: Store, staging: StagingFile | list[StagingFile], *, run_id: int | None,
                watermark: tuple[str, str, datetime] | None = None,
                run_counters: dict[str, int] | None = None, likely_new: bool = False,
                defer_derived: bool = False) -> LoadResult:
    """Load everything staged so far (one file or several) in one transaction, with the watermark and the
    run's counters (``likely_new``, ``defer_derived``: see ``Store.load_events``)."""
    files = staging if isinstance(staging, list) else [staging]
    for f in files:
        f.close()
    paths = [f.path for f in files if f.count]
    if not paths:
        if watermark is not None:
            store.set_watermark(*watermark, run_id=run_id)
        if run_counters and run_id is not None:
            store.add_to_run(run_id, **run_counters)
        if not defer_derived:  # a run's last commit may hold no rows: the deferred refresh is still due
            store.refresh_pending_derived()
        return LoadResult()
    return store.load_events(STAGED_SOURCE, {"path": paths}, run_id=run_id, watermark=watermark,
                             run_counters=run_counters, likely_new=likely_new, defer_derived=defer_derived)
