"""The pandas twins of the heaviest page queries (bench/pandas_equivalents.py, B4's baseline) return the
same rows as the named queries on the demo database, so the benchmark compares equal work."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.pandas_equivalents import COLUMNS, PANDAS
from queries.db import read_connection, run
from queries.filters import Filters

TWINS = ["failures", "top_errors", "recurring_failures", "skip_identities", "cycle_events", "failures_recent",
         "cycle_events_first", "recurring_failures_top", "skip_identities_top", "violations_summary"]


@pytest.fixture(scope="module")
def events(demo_db) -> pd.DataFrame:
    with read_connection(str(demo_db)) as con:  # as bench.cases.b4_queries loads them
        df = con.execute(f"SELECT {', '.join(COLUMNS)} FROM events").df()
    df["activity_time"] = pd.to_datetime(df["activity_time"], utc=True)
    return df


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """Same values regardless of pandas dtype flavours (Int32 vs float, object vs str)."""
    out = frame.reset_index(drop=True).copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = pd.to_datetime(out[col], utc=True)
        elif pd.api.types.is_numeric_dtype(out[col]):
            out[col] = out[col].astype("float64")
        else:
            out[col] = out[col].astype(object).where(out[col].notna(), None)
    return out


@pytest.mark.parametrize("name", TWINS)
def test_twin_returns_the_named_querys_rows(name, demo_db, events):
    params = {}
    if name.startswith("cycle_events"):  # the cycle the benchmark asks for: the one with the most events
        params["cycle_id"] = events["cycle_id"].value_counts().index[0]
    if name.endswith(("_recent", "_first", "_top")):
        params["limit"] = 7  # smaller than the demo's counts, so the cut is tested too
    expected = run(str(demo_db), name, Filters(), **params)
    got = PANDAS[name](events, **params)
    assert len(expected) > 0, name  # the demo has failures, recurring ones, skips and cycles
    assert list(got.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(_comparable(got), _comparable(expected), check_exact=False)
