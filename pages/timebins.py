"""Time bins that follow the range, and the time axis that goes with them (layout only).

Hourly for a period of up to 2 days, daily up to 90 days, weekly above (weeks start on Monday, UTC). The axis
spans the whole period (a period with one busy hour is not one bar on an axis labelled ``23:59:59.999 ...
00:00:00.001``), says what a bin is in words ("Hour (UTC)"), and each bar fills its bin. :func:`complete` gives
every bin of the period a row, so a line chart breaks where a bin has no events instead of drawing across it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pandas as pd

HOURLY_UP_TO = timedelta(days=2)
DAILY_UP_TO = timedelta(days=90)


@dataclass(frozen=True)
class Bin:
    name: str  # $bucket of queries/timeseries.py: hour, day or week
    span: timedelta
    axis_title: str  # the x axis title
    per: str  # "per hour": y axis titles and chart titles
    tickformat: str
    freq: str  # pandas frequency of the bin starts

    @property
    def ms(self) -> int:
        return int(self.span.total_seconds() * 1000)


# tickformat "": plotly.js's own two-level labels (hours, the date under the first of each day)
HOUR = Bin("hour", timedelta(hours=1), "Hour (UTC)", "per hour", "", "h")
DAY = Bin("day", timedelta(days=1), "Day (UTC)", "per day", "%b %-d", "D")
WEEK = Bin("week", timedelta(days=7), "Week starting Monday (UTC)", "per week", "%b %-d, %Y", "W-MON")


def _utc(value) -> datetime | None:
    if value is None or value is pd.NaT or (isinstance(value, float) and value != value):
        return None
    ts = pd.Timestamp(value)
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()


def period(since, until, first_event=None, last_event=None, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The period a chart spans: the filter's bounds, open ends closed by the data (or now)."""
    now = now or datetime.now(timezone.utc)
    start = _utc(since) or _utc(first_event) or now - timedelta(days=1)
    end = _utc(until) or (max(now, _utc(last_event) or now) if _utc(since) else _utc(last_event) or now)
    end = max(end, start + timedelta(minutes=1))
    return start, end


def choose(start: datetime, end: datetime) -> Bin:
    """The bin for a period: hourly up to 2 days, daily up to 90 days, weekly above."""
    span = end - start
    return HOUR if span <= HOURLY_UP_TO else DAY if span <= DAILY_UP_TO else WEEK


def bin_start(when: datetime, b: Bin) -> pd.Timestamp:
    ts = pd.Timestamp(when)
    if b is WEEK:
        day = ts.floor("D")
        return day - pd.Timedelta(days=day.weekday())
    return ts.floor(b.freq)


def last_bin(end: datetime, b: Bin) -> pd.Timestamp:
    """The last bin of a period that ends (exclusive) at ``end``."""
    return bin_start(pd.Timestamp(end) - pd.Timedelta(microseconds=1), b)


def complete(frame: pd.DataFrame, b: Bin, start: datetime, end: datetime, column: str = "bucket") -> pd.DataFrame:
    """``frame`` (one row per bin in ``column``) with a row for every bin of [start, end): the added rows are
    NaN, so a line breaks there (``connectgaps=False``)."""
    bins = pd.date_range(bin_start(start, b), last_bin(end, b), freq=b.span, tz="UTC")
    if not frame.empty:
        frame = frame.assign(**{column: pd.to_datetime(frame[column], utc=True)})
        bins = bins.union(pd.DatetimeIndex(frame[column]))
    return frame.set_index(column).reindex(bins).rename_axis(column).reset_index()


def style_axis(fig, b: Bin, start: datetime, end: datetime, y_title: str, *, bars: bool = True, row=None) -> None:
    """The x axis spans the period with the bin's ticks and title; bars fill their bin; ``y_title`` in words."""
    lo, hi = bin_start(start, b), last_bin(end, b) + pd.Timedelta(b.span)
    if bars:
        fig.update_traces(width=b.ms * 0.9, offset=b.ms * 0.05, selector=dict(type="bar"))
    kw = {} if row is None else {"row": row, "col": 1}
    fig.update_xaxes(range=[lo.isoformat(), hi.isoformat()], tickformat=b.tickformat, title_text=b.axis_title,
                     type="date", **kw)
    fig.update_yaxes(title_text=y_title, rangemode="tozero", **kw)
    if bars:  # counts: whole numbers on the axis (no "0.5 events")
        totals: dict = {}
        for trace in fig.data:
            if trace.type == "bar" and trace.x is not None and trace.y is not None:
                for x, y in zip(trace.x, trace.y):
                    totals[x] = totals.get(x, 0) + (y or 0)
        fig.update_yaxes(tickformat=",d", **({"dtick": 1} if totals and max(totals.values()) <= 8 else {}), **kw)
