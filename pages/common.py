"""What every page shares: the database path, the sidebar filters (kept in the URL), cached queries,
clear error and empty states, and formula-safe CSV downloads.
"""

from __future__ import annotations

import os
from datetime import datetime, time, timedelta, timezone

import pandas as pd
import streamlit as st

from ingest.config import resolve_db_path
from ingest.store import StoreError
from queries import db as qdb
from queries.filters import Filters

PRESETS = {"24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days", "all": "All time",
           "custom": "Custom range"}
DEFAULT_PRESET = "30d"


def db_path() -> str:
    return resolve_db_path(None)


def db_version(path: str) -> tuple:
    """Changes whenever an ingest writes, so cached results refresh after new data lands."""
    parts = []
    for p in (path, path + ".wal"):
        try:
            st_ = os.stat(p)
            parts.append((st_.st_mtime_ns, st_.st_size, st_.st_ino))
        except FileNotFoundError:
            parts.append(None)
    return tuple(parts)


@st.cache_data(ttl=300, show_spinner=False, max_entries=512)
def _cached(path: str, version: tuple, name: str, filters: Filters, extra: tuple) -> pd.DataFrame:
    return qdb.run(path, name, filters, **dict(extra))


def query(name: str, filters: Filters | None = None, **extra) -> pd.DataFrame:
    """Run a named query through the cache; database problems stop the page with a clear message."""
    path = db_path()
    try:
        return _cached(path, db_version(path), name, filters or Filters(), tuple(sorted(extra.items())))
    except qdb.DatabaseMissing as exc:
        st.warning(f"No data yet: {exc}.")
        st.stop()
    except StoreError as exc:
        st.error(f"The database cannot be read right now: {exc}")
        st.stop()


def _query_param(name: str, default: str | None = None) -> str | None:
    value = st.query_params.get(name)
    return value if value not in (None, "") else default


def _parse_day(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def sidebar_filters(now: datetime | None = None) -> Filters:
    """Draw the shared filters; their state lives in session state and in the URL query string."""
    now = now or datetime.now(timezone.utc)
    ss = st.session_state
    if "f_range" not in ss:  # first run of this session: restore the view from the URL
        preset = _query_param("range", DEFAULT_PRESET)
        ss.f_range = preset if preset in PRESETS else DEFAULT_PRESET
        start = _parse_day(_query_param("from")) or (now - timedelta(days=7))
        end = _parse_day(_query_param("to")) or now
        ss.f_custom = (start.date(), end.date())
        ss.f_sps = [s for s in st.query_params.get_all("sp") if s]
    apps = query("service_principals")
    names = dict(zip(apps["service_principal_id"], apps["service_principal_name"].fillna("(unnamed)")))
    ss.f_sps = [s for s in ss.f_sps if s in names]
    with st.sidebar:
        st.selectbox("Time range", list(PRESETS), format_func=PRESETS.get, key="f_range")
        if ss.f_range == "custom":
            st.date_input("From / to (UTC, inclusive)", key="f_custom")
        st.multiselect("Enterprise apps", list(names), format_func=lambda s: names.get(s, s), key="f_sps",
                       placeholder="All apps")
    since = until = None
    if ss.f_range in ("24h", "7d", "30d"):
        since = now - {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}[ss.f_range]
    elif ss.f_range == "custom":
        days = ss.f_custom if isinstance(ss.f_custom, (tuple, list)) else (ss.f_custom,)
        if days and days[0]:
            since = datetime.combine(days[0], time.min, tzinfo=timezone.utc)
            last = days[-1] or days[0]
            until = datetime.combine(last, time.min, tzinfo=timezone.utc) + timedelta(days=1)
    params = {"range": ss.f_range}
    if ss.f_range == "custom" and since and until:
        params |= {"from": since.date().isoformat(), "to": (until - timedelta(days=1)).date().isoformat()}
    st.query_params.clear()
    st.query_params.update(params)
    if ss.f_sps:
        st.query_params["sp"] = list(ss.f_sps)
    return Filters(since=since, until=until, service_principal_ids=tuple(ss.f_sps) or None)


def fmt_time(value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT:
        return "never"
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.tz_convert("UTC").strftime("%Y-%m-%d %H:%M UTC")


def fmt_age(value, now: datetime | None = None) -> str:
    if value is None or value is pd.NaT or (isinstance(value, float) and pd.isna(value)):
        return "never"
    now = now or datetime.now(timezone.utc)
    delta = now - pd.Timestamp(value).to_pydatetime()
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{max(minutes, 0)} min ago"
    if minutes < 48 * 60:
        return f"{minutes // 60} h ago"
    return f"{minutes // 1440} days ago"


def empty_state(message: str) -> None:
    st.info(message)
