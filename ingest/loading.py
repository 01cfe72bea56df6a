"""Staging and bulk loading shared by the file, demo and Graph sources.

Sources write ``{"pos": ..., "raw": <event>}`` lines to a :class:`StagingFile`; :func:`load_staged`
hands the whole file to the store in one transaction (DuckDB parses it, not Python).
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime

from ingest.store import LoadResult, Store

STAGED_SOURCE = ("SELECT json->'$.raw' AS raw, json->>'$.pos' AS pos "
                 "FROM read_json_objects($path, format = 'newline_delimited')")


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


def load_staged(store: Store, staging: StagingFile, *, run_id: int | None,
                watermark: tuple[str, str, datetime] | None = None,
                run_counters: dict[str, int] | None = None) -> LoadResult:
    """Load everything staged so far in one transaction (with the watermark and the run's counters)."""
    staging.close()
    if staging.count == 0:
        if watermark is not None:
            store.set_watermark(*watermark, run_id=run_id)
        if run_counters and run_id is not None:
            store.add_to_run(run_id, **run_counters)
        return LoadResult()
    return store.load_events(STAGED_SOURCE, {"path": staging.path}, run_id=run_id, watermark=watermark,
                             run_counters=run_counters)
