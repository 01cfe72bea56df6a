"""The pandas twins of the heaviest page queries (bench/pandas_equivalents.py, B4's baseline) return the
same rows as the named queries on the demo database, so the benchmark compares equal work."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.pandas_equivalents import PANDAS, load_frames
from queries.db import run
from queries.filters import Filters

TWINS = ["failures", "top_errors", "recurring-failures", "skip_identities", "cycle_events", "failures_recent",
         "cycle_events_first", "recurring_failures_top", "skip_identities_top", "violations_summary", "cycles",
         "cycles_timeline", "last_cycle"]


@pytest.fixture(scope="module")
def loaded(demo_db) -> tuple[pd.DataFrame, dict]:
    return load_frames(str(demo_db))  # as bench.sides.b4_pandas loads them


@pytest.fixture(scope="module")
def events(loaded) -> pd.DataFrame:
    return loaded[0]


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


@pytest.fixture(scope="module")
def scim_frames(loaded) -> dict:
    return loaded[1]


def _with_frames(name: str, events, frames, params):
    import inspect

    wanted = inspect.signature(PANDAS[name]).parameters
    return PANDAS[name](events, **{k: v for k, v in {**params, **frames}.items() if k in wanted})


@pytest.mark.parametrize("name", ["scim_kpis", "scim_latency"])
def test_scim_aggregate_twins(name, demo_db, events, scim_frames):
    expected = run(str(demo_db), name, Filters())
    got = _with_frames(name, events, scim_frames, {})
    assert len(expected) > 0 and expected["requests"].sum() > 0  # the demo has a SCIM audit trail
    assert list(got.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(_comparable(got), _comparable(expected), check_exact=False)


def test_violations_twin_sees_the_scim_evidence(demo_db, events, scim_frames):
    expected = run(str(demo_db), "violations", Filters())
    got = _with_frames("violations", events, scim_frames, {})
    assert (expected["evidence"] == "both").any()  # the demo's SCIM server answered some violations too
    pd.testing.assert_frame_equal(_comparable(got), _comparable(expected), check_exact=False)


def _busy_identity(events) -> pd.Series:
    """The identity with the most events that has a UPN, a userName and SCIM traffic in the demo."""
    rows = events.dropna(subset=["source_upn", "user_name", "target_id"])
    source_id = rows["source_id"].value_counts().index[0]
    return rows[rows["source_id"] == source_id].iloc[-1]


def _parts(value) -> set[str]:
    return set(value.split(", ")) if isinstance(value, str) else set()


def test_identity_search_twin(demo_db, events):
    who = _busy_identity(events)
    term = who["source_upn"].split("@")[0][:4]
    expected = run(str(demo_db), "identity_search", Filters(), term=term)
    got = PANDAS["identity_search"](events, term=term)
    assert len(expected) > 1  # a partial term finds several identities
    assert list(got.columns) == list(expected.columns)
    for col in ("user_names", "target_ids"):  # string_agg's order is DuckDB's choice: compare as sets
        assert [_parts(v) for v in got[col]] == [_parts(v) for v in expected[col]]
    rest = [c for c in expected.columns if c not in ("user_names", "target_ids")]
    pd.testing.assert_frame_equal(_comparable(got[rest]), _comparable(expected[rest]), check_exact=False)


@pytest.mark.parametrize("name,param", [("scim_identity_timeline", "identity"),
                                        ("identity_scim_requests", "source_id"), ("identity_events", "source_id")])
def test_identity_twins(name, param, demo_db, events, scim_frames):
    who = _busy_identity(events)
    value = who["user_name"] if param == "identity" else who["source_id"]
    expected = run(str(demo_db), name, Filters(), **{param: value})
    got = _with_frames(name, events, scim_frames, {param: value})
    assert len(expected) > 0
    assert list(got.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(_comparable(got), _comparable(expected), check_exact=False)
