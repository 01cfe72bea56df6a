"""A lake copy that stops in the middle of a Delta write, for tests/test_lake_kill.py: ``python -m
tests.lake_kill_child DB LAKE MARKER N`` copies DB into LAKE (ingest/lake/command.py) in small batches and, while
delta-rs is writing the N-th table that has days to rewrite (after its first batch, before its commit), creates
MARKER and sleeps until it is killed."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ingest.lake import copy
from ingest.lake.command import copy_db


def main() -> None:
    db, lake, marker, pause_at = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    real = copy._stream
    calls = {"n": 0}

    def paused(reader, target, on_batch):
        calls["n"] += 1
        for batch in real(reader, target, on_batch):
            yield batch
            if calls["n"] == pause_at:  # delta-rs holds the first batch and asks for the next: stop here
                marker.touch()
                time.sleep(600)

    copy._stream = paused
    copy.BATCH_ROWS = 32
    copy_db(db, lake, quiet=True)


if __name__ == "__main__":
    main()
