"""B4 page-query rewrites (issue 7): each faster shape returns exactly the rows of the plain query it
replaces, on the demo database, for all time and for narrower filters."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from queries.db import read_connection, run
from queries.filters import Filters


def _filter_sets(db: str) -> list[Filters]:
    with read_connection(db) as con:
        first, last = con.execute("SELECT min(activity_time), max(activity_time) FROM events").fetchone()
        sps = [r[0] for r in con.execute("SELECT DISTINCT service_principal_id FROM events ORDER BY 1").fetchall()]
    middle = first + (last - first) / 2
    return [Filters(), Filters(since=middle + timedelta(minutes=7, seconds=3)),
            Filters(until=middle, service_principal_ids=(sps[0],)), Filters(service_principal_ids=(sps[-1],))]


@pytest.fixture(scope="module")
def db(demo_db) -> str:
    return str(demo_db)


def test_unlogged_first_rows_and_count_are_the_full_lists_head_and_length(db):
    for filters in _filter_sets(db):
        full = run(db, "scim_unlogged_requests", filters)
        count = run(db, "scim_unlogged_count", filters)["requests"].iloc[0]
        assert count == len(full)
        for limit in (1, 7, len(full) + 5):
            first = run(db, "scim_unlogged_requests_first", filters, limit=limit)
            pd.testing.assert_frame_equal(first, full.head(limit).reset_index(drop=True))
    assert len(run(db, "scim_unlogged_requests", Filters())) > 7  # the demo has enough rows to cut
