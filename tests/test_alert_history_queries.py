"""The Alerts page's queries (queries/alert_history.py) return the rows of their plain reference spellings
(correlated subqueries over the source tables), on a store holding active and resolved alerts with sent, pending
and given-up notifications."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from queries.alert_history import QUERY_LIST, REFERENCES
from queries.db import run
from tests import alert_store


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("alerts") / "store.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        alert_store.build(path, mp)
    return str(path)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    key = [c for c in ("delivery_id", "episode_id") if c in frame.columns][:1] or list(frame.columns)
    return frame.sort_values(key).reset_index(drop=True)


def test_store_has_every_state(db):
    with duckdb.connect(db, read_only=True) as con:
        assert con.execute("SELECT count(*) FILTER (WHERE resolved_at IS NULL), count(resolved_at) FROM alerts") \
            .fetchone() == (2, 2)
        assert {r[0] for r in con.execute("SELECT DISTINCT status FROM alert_deliveries").fetchall()} == {
            "sent", "pending", "failed"}


@pytest.mark.parametrize("name", [query.name for query in QUERY_LIST])
def test_page_query_equals_its_reference(db, name):
    assert set(REFERENCES) == {query.name for query in QUERY_LIST}
    page = run(db, name, limit=None) if "$limit" in next(q.sql for q in QUERY_LIST if q.name == name) else run(db, name)
    with duckdb.connect(db, read_only=True) as con:
        reference = con.execute(REFERENCES[name]).df()
    assert len(page) > 0
    pd.testing.assert_frame_equal(_sorted(page), _sorted(reference), check_dtype=False)


def test_resolved_in_a_window_are_the_references_rows_in_it(db):
    from datetime import timedelta

    from queries.filters import Filters

    with duckdb.connect(db, read_only=True) as con:
        reference = con.execute(REFERENCES["alerts_resolved"]).df()
    first = reference["resolved_at"].min()
    window = Filters(since=first + timedelta(seconds=1), until=reference["resolved_at"].max() + timedelta(days=1))
    page = run(db, "alerts_resolved", window)
    expected = reference[reference["resolved_at"] >= window.since]
    assert 0 < len(page) == len(expected) < len(reference)
    assert sorted(page["episode_id"]) == sorted(expected["episode_id"])


def test_active_alerts_most_severe_first(db):
    active = run(db, "alerts_active")
    assert list(active["rule"]) == ["credential", "quarantine"]  # both critical: the newest first
