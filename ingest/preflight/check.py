"""Checking preflight's predictions (issue 26): each stored finding against what Entra logged for that identity
after the run (confirmed, not yet, wrong; the SQL and its rules are in queries/preflight.py), and the precision.
Read-only: everything here goes through the named queries on a reader connection."""

from __future__ import annotations

from typing import Any

from queries.db import run


def _records(frame) -> list[dict[str, Any]]:
    return [{k: (None if _missing(v) else v) for k, v in row.items()} for row in frame.to_dict("records")]


def _missing(value: Any) -> bool:
    try:
        return value is None or bool(value != value)
    except (TypeError, ValueError):
        return False


def latest_run(db: str) -> int | None:
    """The newest preflight run's id, or None."""
    frame = run(db, "preflight_runs")
    return None if frame.empty else int(frame["run_id"].iloc[0])


def statuses(db: str, run_id: int | None = None) -> list[dict[str, Any]]:
    """The findings of one run (None: every run), each with its status: confirmed, not yet or wrong."""
    return _records(run(db, "preflight", run=run_id))


def precision_rows(db: str, run_id: int | None = None) -> list[dict[str, Any]]:
    """Per kind, then all (kind None): findings, confirmed, not_yet, wrong, precision (None: nothing decided)."""
    return _records(run(db, "preflight_precision", run=run_id))

