"""Charts that read (issue 23, item 5), checked on the figures the pages draw (AppTest on the demo database):

- time bins follow the range (hourly for a day, daily for the demo's days, weekly above 90 days) with axis titles
  in words, an x axis that spans the period, and bar totals equal to a plain count over ``events``;
- the success-rate line breaks across bins without successes or failures;
- one colour per error code and skip category whatever the filter, the same in both skip charts;
- the Sync cycles chart tells initial from incremental cycles;
- the Identity timeline never draws a failure at the x/y of a success;
- the binned series equal their plain references for every bin size (queries/timeseries.py).
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import duckdb
import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from pages import palette, timebins
from queries.db import release, run, run_sql
from queries.filters import Filters
from queries.reference import REFERENCES
from tests.conftest import ROOT, SIM_END, chart_figures

LAST_DAY = (SIM_END - timedelta(days=1)).date()  # the demo's last day (it ends at SIM_END)


def _app(db, monkeypatch, page: str, **params) -> AppTest:
    monkeypatch.setenv("PROVLENS_DB", str(db))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params["range"] = "all"
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    if page != "overview":
        at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def _values(array) -> list:
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def _figure(at, title_part: str) -> dict:
    return next(f for f in chart_figures(at) if title_part in f["layout"]["title"]["text"])


def _bar_totals(figure: dict) -> dict[pd.Timestamp, float]:
    totals: dict = {}
    for trace in figure["data"]:
        if trace["type"] == "bar":
            for x, y in zip(_values(trace["x"]), _values(trace["y"])):
                key = pd.Timestamp(x).tz_localize("UTC") if pd.Timestamp(x).tzinfo is None else pd.Timestamp(x)
                totals[key] = totals.get(key, 0) + y
    return totals


def _plain_counts(db, unit: str, since=None, until=None) -> dict[pd.Timestamp, int]:
    with duckdb.connect(str(db), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        rows = con.execute(f"SELECT date_trunc('{unit}', activity_time), count(*) FROM events "
                           "WHERE ($since::TIMESTAMPTZ IS NULL OR activity_time >= $since) "
                           "AND ($until::TIMESTAMPTZ IS NULL OR activity_time < $until) GROUP BY 1",
                           {"since": since, "until": until}).fetchall()
    return {pd.Timestamp(t).tz_convert("UTC"): n for t, n in rows}


def test_one_day_is_binned_by_hour_over_the_whole_day(demo_db, monkeypatch):
    day = LAST_DAY.isoformat()
    at = _app(demo_db, monkeypatch, "overview", range="custom", **{"from": day, "to": day})
    events = _figure(at, "Events per hour")
    layout = events["layout"]
    assert layout["xaxis"]["title"]["text"] == "Hour (UTC)"
    assert layout["yaxis"]["title"]["text"] == "Events per hour"
    start = datetime.combine(LAST_DAY, datetime.min.time(), tzinfo=timezone.utc)
    # the axis spans the whole day (never one bar on an axis of a millisecond)
    lo, hi = (pd.Timestamp(v) for v in layout["xaxis"]["range"])
    assert lo == pd.Timestamp(start) and hi == pd.Timestamp(start + timedelta(days=1))
    # each bar is (most of) its hour wide, and the totals are the plain hourly counts
    assert all(t["width"] == pytest.approx(3_600_000 * 0.9) for t in events["data"] if t["type"] == "bar")
    want = _plain_counts(demo_db, "hour", start, start + timedelta(days=1))
    assert len(want) > 3 and _bar_totals(events) == want


def test_the_demo_days_are_binned_by_day(demo_db, monkeypatch):
    at = _app(demo_db, monkeypatch, "overview")
    events = _figure(at, "Events per day")
    assert events["layout"]["xaxis"]["title"]["text"] == "Day (UTC)"
    assert _bar_totals(events) == _plain_counts(demo_db, "day")
    scim = _figure(at := _app(demo_db, monkeypatch, "scim"), "Requests per day by operation")
    assert scim["layout"]["xaxis"]["title"]["text"] == "Day (UTC)"
    assert scim["layout"]["yaxis"]["title"]["text"] == "Requests per day"
    assert not any("bucket" in str(f["layout"]) for f in chart_figures(at))  # no raw column names


def test_bins_follow_the_length_of_the_period():
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert timebins.choose(t0, t0 + timedelta(hours=24)) is timebins.HOUR
    assert timebins.choose(t0, t0 + timedelta(days=2)) is timebins.HOUR
    assert timebins.choose(t0, t0 + timedelta(days=2, hours=1)) is timebins.DAY
    assert timebins.choose(t0, t0 + timedelta(days=90)) is timebins.DAY
    assert timebins.choose(t0, t0 + timedelta(days=91)) is timebins.WEEK
    # "last 24 hours" spans up to now even when the data is older
    now = t0 + timedelta(days=10)
    assert timebins.period(now - timedelta(hours=24), None, t0, t0 + timedelta(hours=1), now=now) == \
        (now - timedelta(hours=24), now)


@pytest.mark.parametrize("bucket", ["hour", "day", "week"])
def test_the_binned_series_equal_their_plain_references(demo_db, bucket):
    with duckdb.connect(str(demo_db), read_only=True) as con:
        last = con.execute("SELECT max(activity_time) FROM events").fetchone()[0]
    release(str(demo_db))
    for filters in (Filters(), Filters(since=last - timedelta(days=2, minutes=17)), Filters(until=last)):
        for name in ("events_by_status_over_time", "success_rate_over_time", "failures_by_code_over_time",
                     "skips_by_category_over_time", "cycles_over_time"):
            got = run(str(demo_db), name, filters, bucket=bucket)
            release(str(demo_db))
            with duckdb.connect(str(demo_db), read_only=True) as con:
                con.execute("SET TimeZone = 'UTC'")
                want = run_sql(con, REFERENCES[name], filters.params() | {"bucket": bucket})
            assert list(got.columns) == list(want.columns)
            assert got.astype(object).where(got.notna(), None).values.tolist() == \
                want.astype(object).where(want.notna(), None).values.tolist(), (name, bucket, filters)
            assert len(got), name


def test_the_success_rate_line_breaks_where_a_bin_has_no_outcome(demo_db, monkeypatch):
    day = LAST_DAY.isoformat()
    at = _app(demo_db, monkeypatch, "overview", range="custom", **{"from": day, "to": day})
    (line,) = _figure(at, "Success rate per hour")["data"]
    assert line["connectgaps"] is False
    ys = _values(line["y"])
    assert len(ys) == 24  # every hour of the day has a point or a gap
    start = datetime.combine(LAST_DAY, datetime.min.time(), tzinfo=timezone.utc)
    with duckdb.connect(str(demo_db), read_only=True) as con:
        hours = con.execute("SELECT count(DISTINCT date_trunc('hour', activity_time)) FROM events WHERE "
                            "status IN ('success', 'failure') AND activity_time >= $s AND activity_time < $u",
                            {"s": start, "u": start + timedelta(days=1)}).fetchone()[0]
    drawn = [y for y in ys if y is not None and y == y]
    assert len(drawn) == hours and 0 < hours < 24  # the gaps are NaN, not a line drawn across them


def _trace_colours(figure: dict) -> dict[str, str]:
    return {t["name"]: t["marker"]["color"] for t in figure["data"] if t["type"] == "bar"}


def test_error_code_colours_do_not_change_with_the_filter(demo_db, monkeypatch, truth):
    everything = _trace_colours(_figure(_app(demo_db, monkeypatch, "failures"), "Failures per"))
    assert len(everything) >= 3
    seen = 0
    for app in truth["apps"]:
        one = _trace_colours(_figure(_app(demo_db, monkeypatch, "failures", sp=app["service_principal_id"]),
                                     "Failures per"))
        for code, colour in one.items():
            assert colour == everything[code] == palette.error_code(code), code
            seen += 1
    assert seen >= len(everything)  # every code was seen again under a narrower filter
    # the same code, whatever else the filter shows beside it
    assert palette.error_code("TooManyRequests") == palette.color_map(["x", "TooManyRequests"], "error_code")[
        "TooManyRequests"] == palette.color_map(["TooManyRequests"], "error_code")["TooManyRequests"]


def test_a_skip_category_has_one_colour_in_both_charts_and_under_any_filter(demo_db, monkeypatch, truth):
    at = _app(demo_db, monkeypatch, "skipped")
    pie = _figure(at, "Skips by category")["data"][0]
    pie_colours = dict(zip(_values(pie["labels"]), _values(pie["marker"]["colors"])))
    bars = _trace_colours(_figure(at, "Skips per"))
    assert set(bars) <= set(pie_colours) and len(bars) >= 3
    assert all(bars[c] == pie_colours[c] for c in bars)
    assert palette.FAILURE not in pie_colours.values() and palette.SUCCESS not in pie_colours.values()
    one_app = _app(demo_db, monkeypatch, "skipped", sp=truth["apps"][0]["service_principal_id"])
    narrower = _trace_colours(_figure(one_app, "Skips per"))
    assert narrower and all(narrower[c] == bars[c] for c in narrower)


def test_the_cycles_chart_tells_initial_from_incremental_cycles(demo_db, monkeypatch, truth):
    at = _app(demo_db, monkeypatch, "cycles")
    fig = _figure(at, "Logged cycles per")
    bars = [t for t in fig["data"] if t["type"] == "bar"]
    initial = [t for t in bars if t["marker"].get("pattern", {}).get("shape") == "/"]
    incremental = [t for t in bars if not t["marker"].get("pattern", {}).get("shape")]
    want_initial = sum(c["kind"] == "initial" for c in truth["cycles"])
    assert want_initial > 0
    assert sum(sum(_values(t["y"])) for t in initial) == want_initial
    assert all("initial" in t["name"] for t in initial) and not any("initial" in t["name"] for t in incremental)
    assert sum(sum(_values(t["y"])) for t in incremental) == len(truth["cycles"]) - want_initial
    stars = [t for t in fig["data"] if t["type"] == "scatter" and t.get("marker", {}).get("symbol") == "star"]
    assert sum(len(_values(t["x"])) for t in stars) == len({
        (c["job_id"], c["started_at"][:10]) for c in truth["cycles"] if c["kind"] == "initial"})
    # one row per job, not one hairline per cycle: at most one bar per bin, job and kind/outcome
    assert len({t["xaxis"] for t in bars}) == len({c["job_id"] for c in truth["cycles"]})


def test_no_failure_in_the_identity_timeline_hides_under_a_success(demo_db, monkeypatch):
    with duckdb.connect(str(demo_db), read_only=True) as con:  # the person with the most failed creates
        source_id, upn, failures = con.execute(
            "SELECT source_id, any_value(source_upn), count(*) FROM events WHERE status = 'failure' "
            "GROUP BY source_id ORDER BY 3 DESC, 1 LIMIT 1").fetchone()
    at = _app(demo_db, monkeypatch, "identity", q=upn)
    (fig,) = chart_figures(at)
    points = {name: set() for name in ("success", "failure")}
    lanes_of = {}
    ticks = dict(zip(fig["layout"]["yaxis"]["tickvals"], fig["layout"]["yaxis"]["ticktext"]))
    for trace in fig["data"]:
        xy = list(zip(_values(trace["x"]), _values(trace["y"])))
        points.setdefault(trace["name"], set()).update(xy)
        lanes_of[trace["name"]] = [ticks[round(y)] for _x, y in xy]
    assert points["failure"] and points["success"]
    assert not points["failure"] & points["success"]  # never at the same x and y
    # and never in the same row at all: every outcome has its own row inside a lane
    assert not {y for _x, y in points["failure"]} & {y for _x, y in points["success"]}
    assert sum(lane.startswith("Entra") for lane in lanes_of["failure"]) == failures  # every failure is drawn
    # the failures are drawn last, on top of everything else
    assert fig["data"][-1]["name"] == "failure"
