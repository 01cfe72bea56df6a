"""The all-time page state (migration 6, ingest/derived.py): a page query reading it returns exactly the
rows the same query computes from the events. A window that covers everything (since = long before the
first event) takes the events path, so both paths must agree row for row, in order."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from ingest.derived import SKIP_TOP_ROWS
from queries.db import read_connection, run
from queries.filters import Filters

_EVERYTHING = Filters(since=datetime(2000, 1, 1, tzinfo=timezone.utc))


def _rows(frame) -> list[tuple]:
    rows = frame.astype(object).itertuples(index=False)
    return [tuple(None if v is None or v != v else v for v in row) for row in rows]


def _busiest_cycle(db: str) -> str:
    with read_connection(db) as con:
        return con.execute("SELECT cycle_id FROM events WHERE cycle_id IS NOT NULL GROUP BY cycle_id "
                           "ORDER BY count(*) DESC, cycle_id LIMIT 1").fetchone()[0]


@pytest.mark.parametrize(("name", "params"), [
    ("top_errors", {}),
    ("skips_by_category", {}),
    ("skip_identities", {}),
    ("skip_identities_top", {"limit": 3}),
    ("violations_summary", {}),
    ("violations", {}),
    ("failures_recent", {"limit": 7}),
    ("recurring_failures_top", {"limit": 5}),
    ("recurring_failures_count", {}),
    ("top_error_codes", {"limit": 3}),
    ("overview_kpis", {}),
])
def test_all_time_page_state_equals_the_events_path(demo_db, name, params):
    db = str(demo_db)
    stored = run(db, name, Filters(), **params)
    computed = run(db, name, _EVERYTHING, **params)
    assert len(stored) > 0, name  # the demo tenant has failures, skips and violations
    assert stored.equals(computed), name


@pytest.mark.parametrize("limit", [1, 5, 1000])
def test_first_events_of_a_cycle_equal_the_events_path(demo_db, limit):
    db = str(demo_db)
    cycle_id = _busiest_cycle(db)
    stored = run(db, "cycle_events_first", Filters(), cycle_id=cycle_id, limit=limit)
    computed = run(db, "cycle_events_first", _EVERYTHING, cycle_id=cycle_id, limit=limit)
    full = run(db, "cycle_events", Filters(), cycle_id=cycle_id)
    assert len(stored) == min(limit, len(full))
    assert stored.equals(computed)
    assert _rows(stored) == _rows(full.head(limit))  # the same events as the full cycle's first ones


# skip_identities_top as first written: every identity numbered by a window (the query uses a top-N aggregate).
_SKIP_TOP_WINDOW = """
    SELECT *, count(*) OVER (PARTITION BY skip_category) AS category_identities
    FROM ({skip_identities}) AS s
    QUALIFY row_number() OVER (PARTITION BY skip_category
                               ORDER BY cycles DESC, last_seen DESC, source_id, service_principal_id) <= $limit
    ORDER BY skip_category, cycles DESC, last_seen DESC, source_id, service_principal_id"""


# Unfiltered, limits up to derived.SKIP_TOP_ROWS read the stored top rows (derived_skip_top); above it, and with any
# filter, the query aggregates the identities itself.
@pytest.mark.parametrize("limit", [1, 3, SKIP_TOP_ROWS, SKIP_TOP_ROWS + 1, 100_000])
@pytest.mark.parametrize("filters", [Filters(), _EVERYTHING])
def test_top_skipped_identities_equal_the_window_definition(demo_db, limit, filters):
    from queries.catalog import QUERIES
    from queries.db import run_sql
    from queries.pages import _unordered

    db = str(demo_db)
    got = run(db, "skip_identities_top", filters, limit=limit)
    reference = _SKIP_TOP_WINDOW.format(skip_identities=_unordered(QUERIES["skip_identities"].sql))
    with read_connection(db) as con:
        want = run_sql(con, reference, filters.params() | {"limit": limit})
    assert len(got) > 0 and list(got.columns) == list(want.columns)
    assert _rows(got) == _rows(want)
    if limit == 1:
        assert len(got) == got["skip_category"].nunique()  # the cut is really made


def test_top_skipped_identities_read_the_stored_top_rows_only_when_they_hold_the_answer(demo_db):
    """Unfiltered with $limit <= SKIP_TOP_ROWS the plan reads derived_skip_top, not the identities; otherwise the
    identities (the stored rows could lack some)."""
    from queries.catalog import QUERIES
    from queries.db import bind

    sql = QUERIES["skip_identities_top"].sql
    with read_connection(str(demo_db)) as con:
        def plan(limit: int) -> str:
            return con.execute("EXPLAIN ANALYZE " + sql, bind(sql, Filters().params() | {"limit": limit})
                               ).fetchall()[0][1]
        stored, computed = plan(3), plan(SKIP_TOP_ROWS + 1)
    assert "derived_skip_top" in stored and "derived_skip_identities" not in stored
    assert "derived_skip_identities" in computed
