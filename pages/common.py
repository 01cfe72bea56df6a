"""What every page shares: the database path, the sidebar filters (kept in the URL), the freshness
panel, cached queries, clear error and empty states, and formula-safe CSV downloads of every table.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone

import duckdb
import pandas as pd
import streamlit as st

from ingest.config import resolve_db_path
from ingest.store import StoreError
from pages import lake
from pages.html_table import table_html
from queries import db as qdb
from queries.catalog import QUERIES
from queries.filters import Filters

PRESETS = {"24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days", "all": "All time",
           "custom": "Custom range"}
DEFAULT_PRESET = "30d"
ALL_JOBS = ""


# Every ASCII punctuation character: CommonMark lets a backslash escape any of them, and escaping all of them
# (not only ``[ ] ( ) ! * _ ` < > # | ~ $ \``) also defuses what Streamlit's markdown adds on top (``:color[...]``
# directives, ``$`` maths, tables, strikethrough).
_MD_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
# GFM's literal autolinks (``http://x``, ``www.x``, ``a@b.c``) are found in the text *after* the escapes are
# resolved (remark-gfm rewrites text nodes), so backslashes cannot stop them: an invisible WORD JOINER (U+2060)
# between ``http``/``https``/``www`` and what follows, and before ``@``, breaks the patterns.
_AUTOLINK = re.compile(r"(?i)(?<=https)(?=:)|(?<=http)(?=:)|(?<=www)(?=\.)|(?=@)")
WORD_JOINER = "\u2060"


def md_text(value) -> str:
    """``value`` as literal text inside Streamlit markdown (``st.markdown``/``write``/``caption``/``info``/``warning``/
    ``error``/``success``, headings, ``help=`` tooltips, tab and expander labels): every ASCII punctuation
    character is backslash-escaped and line breaks become spaces, so text a user typed into the URL or an
    identity's name in the data can never become a link, an image, a heading or formatting (a URL or an email
    address shows as text, with an invisible word joiner that stops GFM's autolinks). Use it for every user- or
    data-controlled string that reaches markdown, and never inside backticks (a code span shows the backslashes)."""
    text = " ".join(str(value).splitlines()) if value is not None else ""
    return _MD_PUNCTUATION.sub(r"\\\1", _AUTOLINK.sub(WORD_JOINER, text))


def db_path() -> str:
    """The database the pages read: the file configured, or on a lake (``PROVLENS_LAKE``) this session's local copy
    of the chosen tenant (pages/lake.py)."""
    if lake.lake_url() and (copy := lake.current_database()):
        return copy
    return resolve_db_path(None)


def on_lake() -> bool:
    """Whether the dashboard reads a lake (``PROVLENS_LAKE``) rather than a database file."""
    return lake.lake_url() is not None


def db_version(path: str) -> tuple:
    """Changes whenever an ingest writes, so cached results refresh after new data lands."""
    return qdb.file_signature(path)


@st.cache_data(ttl=300, show_spinner=False, max_entries=512)
def _cached(path: str, version: tuple, name: str, filters: Filters, extra: tuple) -> pd.DataFrame:
    return qdb.run(path, name, filters, **dict(extra))


def query(name: str, filters: Filters | None = None, **extra) -> pd.DataFrame:
    """Run a named query through the cache; database problems stop the page with a clear message."""
    path = db_path()
    if "limit" in extra and (cap := row_cap()):
        extra["limit"] = min(int(extra["limit"]), cap)
    try:
        return _cached(path, db_version(path), name, filters or Filters(), tuple(sorted(extra.items())))
    except qdb.DatabaseMissing as exc:
        st.warning(f"No data yet: {md_text(exc)}.")
        st.stop()
    except StoreError as exc:
        st.error(f"The database cannot be read right now: {md_text(exc)}")
        st.stop()
    except duckdb.Error as exc:  # e.g. a database from another tool, or one older than this page
        st.error(f"The database {md_text(path)} cannot answer this page's question ({type(exc).__name__}: "
                 f"{md_text(str(exc).splitlines()[0])}). Run `python -m ingest migrate` to upgrade it, or point "
                 "PROVLENS_DB at a provlens database.")
        st.stop()


def page_setup(page_file: str) -> Filters:
    """Call first on every page: the shared filters, or a detour through app.py when Streamlit ran the
    page on its own. On a freshly started server, Streamlit serves the first deep link (``/cycles?...``)
    from the ``pages/`` directory without app.py (legacy multipage mode) until app.py has called
    ``st.navigation`` once; then the sidebar and filters would be missing.
    """
    if "filters" in st.session_state:
        if notice := st.session_state.get("f_date_notice"):  # bad dates in the URL (sidebar_filters)
            st.warning(notice, icon=":material/event_busy:")
        show_url_notices()
        filters = st.session_state["filters"]
        _unused_event_filters(page_file, filters)
        return filters
    st.session_state["url_at_start"] = {k: st.query_params.get_all(k) for k in st.query_params}
    st.session_state["deep_link"] = page_file
    st.switch_page("app.py")


def follow_deep_link() -> None:
    """In app.py after st.navigation: continue to the page a redirected deep link asked for."""
    target = st.session_state.pop("deep_link", None)
    if target:
        st.switch_page(target)


def has_table(name: str) -> bool:
    """Whether the database holds ``name`` (features such as the SCIM audit trail are optional)."""
    return name in set(query("tables")["table_name"])


def has_rows(table_name: str) -> bool:
    """Whether ``table_name`` exists and holds at least one row."""
    if not has_table(table_name):
        return False
    counts = query("table_rows")
    return bool(counts.loc[counts["table_name"] == table_name, "rows"].sum())


def query_names() -> set[str]:
    return set(QUERIES)


@st.cache_data(ttl=300, show_spinner=False, max_entries=64)
def _export_rows(path: str, version: tuple, dataset: str, filters: Filters) -> int:
    from queries.export import count_rows

    return count_rows(path, dataset, filters)


def export_rows(dataset: str, filters: Filters | None) -> int:
    """How many rows the export would hold (cheap: a count, no file)."""
    path = db_path()
    return _export_rows(path, db_version(path), dataset, filters or Filters())


def export_builder(dataset: str, filters: Filters | None, fmt: str, part: str = "file"):
    """A callable for ``st.download_button(data=...)``: the export is built only when someone clicks, and
    is not kept in the server's memory afterwards (``part``: "file" or "manifest")."""
    from queries.export import export_bytes

    path = db_path()

    def build() -> bytes:
        data, manifest = export_bytes(path, dataset, filters or Filters(), fmt)
        return data if part == "file" else json.dumps(manifest, indent=2, default=str).encode()

    return build


# --- Honest URLs: a URL parameter that cannot be used is named in a visible notice, never silently dropped ---

# Every URL parameter a page reads (the sidebar's, the event filters', and the pages' own). Another name in a URL
# gets a notice. Add a page's new parameter here.
KNOWN_PARAMS = {"range", "from", "to", "sp", "job", "type", "rows", "status", "action", "error", "skip", "identity",
                "cycle", "change", "q", "dataset", "id", "embed", "embed_options", "tenant"}


def url_notice(param: str, value, problem: str) -> None:
    """Name a URL parameter that could not be used, and what the page shows instead: ``param=value: problem``.
    The notice is shown at the top of every page (:func:`page_setup`) until the filter it concerns is changed."""
    shown = f"{md_text(param)}={md_text(value)}" if value is not None else md_text(param)
    st.session_state.setdefault("f_url_notices", {})[param] = f"The URL's **{shown}**: {problem}"


def show_url_notices() -> None:
    """The notices :func:`url_notice` collected, one warning each."""
    for message in st.session_state.get("f_url_notices", {}).values():
        st.warning(message, icon=":material/link_off:")


def _drop_notice(*params: str) -> None:
    notices = st.session_state.get("f_url_notices", {})
    for param in (*params, "_unknown"):
        notices.pop(param, None)


# The event filters (queries/filters.py) each page applies; the others are named on the page as not used there.
EVENT_FILTER_LABELS = {"status": "status", "action": "action", "error": "error code", "skip": "skip category",
                       "identity": "identity", "cycle": "cycle id", "change": "change id"}
PAGE_EVENT_FILTERS = {
    "pages/events.py": set(EVENT_FILTER_LABELS),
    "pages/export.py": set(EVENT_FILTER_LABELS),  # the events, failures and skipped datasets
    "pages/failures.py": {"status", "action", "error", "identity", "cycle", "change"},
    "pages/cycles.py": {"cycle"},  # the picked cycle (its events below the table) is the cycle-id filter's `cycle`
}


def _unused_event_filters(page_file: str, filters: Filters) -> None:
    unused = [EVENT_FILTER_LABELS[n] for n in filters.details() if n not in PAGE_EVENT_FILTERS.get(page_file, ())]
    if unused:
        st.caption(f":material/filter_alt_off: Not applied on this page: the {', '.join(unused)} filter"
                   f"{'s' if len(unused) > 1 else ''} (sidebar, Event filters). The Events page applies every "
                   "filter.")


def _query_param(name: str, default: str | None = None) -> str | None:
    values = st.session_state.get("url_at_start", {}).get(name) or [None]
    return values[0] if values[0] not in (None, "") else default


# Days a URL may ask for: pandas timestamps end in 2262, and the date picker and "to + 1 day" must not overflow
# (``?to=9999-12-31`` raised OverflowError on every page).
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(2200, 12, 31)


def _parse_day(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def _url_days(now: datetime) -> tuple[tuple[date, date], str | None]:
    """The custom range's (from, to) days from the URL, or the default (the last 7 days) and a notice saying why
    the URL's could not be used: not a date, outside 1970-2200, or ``from`` after ``to``."""
    default = ((now - timedelta(days=7)).date(), now.date())
    texts = {name: _query_param(name) for name in ("from", "to")}
    days = {name: _parse_day(text) for name, text in texts.items()}
    bad = [f"{name}={md_text(text)}" for name, text in texts.items() if text and days[name] is None]
    bad += [f"{name}={md_text(texts[name])}" for name, day in days.items()
            if day is not None and not FIRST_DAY <= day.date() <= LAST_DAY]
    if bad:
        return default, (f"The date{'s' if len(bad) > 1 else ''} {', '.join(bad)} in the URL "
                         f"{'are' if len(bad) > 1 else 'is'} not a day between {FIRST_DAY} and {LAST_DAY} "
                         "(YYYY-MM-DD): showing the default time range instead.")
    start = days["from"].date() if days["from"] else default[0]
    end = days["to"].date() if days["to"] else max(default[1], start)
    if start > end:
        return default, (f"The URL's range starts ({start}) after it ends ({end}): showing the default time "
                         "range instead.")
    return (start, end), None


PRESET_SPANS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}


def preset_since(preset: str, now: datetime) -> datetime:
    """The start of a "last ..." preset, counted from the current minute: the filters (part of every query's
    cache key) then stay the same for a minute. From the exact time, every run of the default view (30 days)
    missed the cache and ran all its queries again."""
    return now.replace(second=0, microsecond=0) - PRESET_SPANS[preset]


def _drop_date_notice() -> None:
    st.session_state.pop("f_date_notice", None)
    _drop_notice("range")


def sidebar_filters(now: datetime | None = None) -> Filters:
    """Draw the shared filters; their state lives in session state and in the URL query string."""
    now = now or datetime.now(timezone.utc)
    ss = st.session_state
    if "f_range" not in ss:  # first run of this session: restore the view from the URL
        if "url_at_start" not in ss:  # (set already when a deep link was redirected through app.py)
            ss.url_at_start = {k: st.query_params.get_all(k) for k in st.query_params}
        preset = _query_param("range", DEFAULT_PRESET)
        ss.f_range = preset if preset in PRESETS else DEFAULT_PRESET
        ss.f_url_notices = ss.get("f_url_notices", {})  # the tenant picker (pages/lake.py) may have one
        if preset not in PRESETS:
            url_notice("range", preset, f"not a time range ({', '.join(PRESETS)}); showing the "
                                        f"{PRESETS[DEFAULT_PRESET].lower()}.")
        ss.f_custom, ss.f_date_notice = _url_days(now)
        if ss.f_date_notice and ss.f_range == "custom":
            ss.f_range = DEFAULT_PRESET
        else:
            ss.f_date_notice = None
        ss.f_sps = [s for s in ss.url_at_start.get("sp", []) if s]
        ss.f_job = _query_param("job", ALL_JOBS)
        ss.f_types = [t for t in ss.url_at_start.get("type", []) if t]
        for param in ("status", "action", "error", "skip"):
            ss[f"f_{param}"] = [v for v in ss.url_at_start.get(param, []) if v]
        for param in ("identity", "cycle", "change"):
            ss[f"f_{param}"] = _query_param(param, "")
        ss.f_check_url = True
    apps = query("service_principals")
    names = dict(zip(apps["service_principal_id"], apps["service_principal_name"].fillna("(unnamed)")))
    if ss.pop("f_check_url", False):
        _check_url(names)
    ss.f_sps = [s for s in ss.f_sps if s in names]
    with st.sidebar:
        st.selectbox("Time range", list(PRESETS), format_func=PRESETS.get, key="f_range",
                     on_change=_drop_date_notice)  # the notice below stays until the range is changed
        if ss.f_range == "custom":
            st.date_input("From / to (UTC, inclusive)", key="f_custom", min_value=FIRST_DAY, max_value=LAST_DAY)
        st.multiselect("Enterprise apps", list(names), format_func=lambda s: names.get(s, s), key="f_sps",
                       placeholder="All apps")
        jobs = query("jobs")
        if ss.f_sps:
            jobs = jobs[jobs["service_principal_id"].isin(ss.f_sps)]
        job_labels = {ALL_JOBS: "All jobs"} | {
            j: f"{names.get(sp, sp)}: {j.split('.')[0]} job"
            for j, sp in zip(jobs["job_id"], jobs["service_principal_id"])}
        if ss.get("f_job") not in job_labels:
            if ss.pop("f_check_job", False):
                url_notice("job", ss.f_job, "this job is not in this database"
                           + (" for the chosen apps" if ss.f_sps else "") + "; showing all jobs.")
            ss.f_job = ALL_JOBS
        ss.pop("f_check_job", None)
        st.selectbox("Provisioning job", list(job_labels), format_func=job_labels.get, key="f_job",
                     on_change=_drop_notice, args=("job",),
                     help="A job is one app's synchronization job (its id is shown on the Sync cycles page)")
        types = list(query("identity_types")["source_type"])
        ss.f_types = [t for t in ss.get("f_types", []) if t in types]
        st.multiselect("Identity types", types, key="f_types", placeholder="All types",
                       on_change=_drop_notice, args=("type",),
                       help="Entra's identityType of the source object (User, Group, ...). Events, failures, skips "
                            "and violations are filtered; sync cycles count every type.")
        details = _event_filter_widgets()
    since = until = None
    if ss.f_range in PRESET_SPANS:
        since = preset_since(ss.f_range, now)
    elif ss.f_range == "custom":
        days = ss.f_custom if isinstance(ss.f_custom, (tuple, list)) else (ss.f_custom,)
        if days and days[0]:
            since = datetime.combine(days[0], time.min, tzinfo=timezone.utc)
            last = days[-1] or days[0]
            until = datetime.combine(last, time.min, tzinfo=timezone.utc) + timedelta(days=1)
    params = {"range": ss.f_range}
    if ss.f_range == "custom" and since and until:
        params |= {"from": since.date().isoformat(), "to": (until - timedelta(days=1)).date().isoformat()}
    if lake.lake_url() and ss.get("f_tenant"):  # the lake's tenant picker (pages/lake.py), drawn before these
        params["tenant"] = ss.f_tenant
    st.query_params.clear()
    st.query_params.update(params)
    if ss.f_sps:
        st.query_params["sp"] = list(ss.f_sps)
    job = ss.f_job if ss.f_job != ALL_JOBS else None
    if job:
        st.query_params["job"] = job
    if ss.f_types:
        st.query_params["type"] = list(ss.f_types)
    for param, value in details.items():
        st.query_params[param] = list(value) if isinstance(value, tuple) else value
    return Filters(since=since, until=until, service_principal_ids=tuple(ss.f_sps) or None, job_id=job,
                   identity_types=tuple(ss.f_types) or None, statuses=details.get("status"),
                   actions=details.get("action"), error_codes=details.get("error"),
                   skip_categories=details.get("skip"), identity=details.get("identity"),
                   cycle_id=details.get("cycle"), change_id=details.get("change"))


STATUSES = ("success", "failure", "skipped", "warning")  # Entra's provisioningStatusInfo.status values


def _vocabulary() -> dict[str, list[str]]:
    """The values each list filter can take: those in the database (statuses: Entra's four as well)."""
    vocab = query("event_vocabulary")
    out = {kind: list(vocab.loc[vocab["kind"] == kind, "value"]) for kind in ("status", "action", "error", "skip")}
    out["status"] = list(dict.fromkeys([*STATUSES, *out["status"]]))
    return out


def _check_url(names: dict) -> None:
    """On a session's first run: a notice for each URL parameter the filters cannot use (an unknown app, job,
    identity type, status, action, error code, skip category or cycle, a bad ``rows``, an unknown name)."""
    ss = st.session_state
    unknown_apps = [s for s in ss.f_sps if s not in names]
    for sp in unknown_apps:
        rest = "showing all apps" if len(unknown_apps) == len(ss.f_sps) else "ignored; showing the other apps"
        url_notice("sp", sp, f"app id {md_text(sp)} is not in this database; {rest}.")
    ss.f_check_job = bool(ss.f_job)
    types = set(query("identity_types")["source_type"])
    for t in [t for t in ss.f_types if t not in types]:
        url_notice("type", t, "no event has this identity type; ignored.")
    vocab = _vocabulary()
    for param, label in (("status", "status"), ("action", "action"), ("error", "error code"),
                         ("skip", "skip category")):
        bad = [v for v in ss[f"f_{param}"] if v not in vocab[param]]
        for value in bad:
            known = f" (one of: {', '.join(vocab[param])})" if param in ("status", "action", "skip") else ""
            url_notice(param, value, f"unknown {label}{md_text(known)}; ignored.")
        ss[f"f_{param}"] = [v for v in ss[f"f_{param}"] if v in vocab[param]]
    if ss.f_cycle and not bool(query("cycle_known", Filters(cycle_id=ss.f_cycle)).iloc[0]["known"]):
        url_notice("cycle", ss.f_cycle, "no sync cycle has this id in this database; the filter is kept and "
                                        "matches no event.")
    if (tenant := _query_param("tenant")) is not None and not lake.lake_url():
        url_notice("tenant", tenant, "this dashboard reads one database, not a lake (PROVLENS_LAKE); ignored.")
    rows = _query_param("rows")
    if rows is not None and not (rows.isdigit() and int(rows) > 0):
        url_notice("rows", rows, "not a positive whole number; tables show their usual number of rows.")
    unknown = sorted(set(ss.url_at_start) - KNOWN_PARAMS)
    if unknown:
        known = ", ".join(sorted(KNOWN_PARAMS - {"embed", "embed_options"}))
        ss.f_url_notices["_unknown"] = (
            f"The URL parameter{'s' if len(unknown) > 1 else ''} **{', '.join(md_text(n) for n in unknown)}** "
            f"{'are' if len(unknown) > 1 else 'is'} unknown to provlens and ignored (known: {known}).")


def _event_filter_widgets() -> dict:
    """The event filters in the sidebar (status, action, error code, skip category, identity, cycle, change); the
    ones set, by URL parameter name."""
    ss = st.session_state
    vocab = _vocabulary()
    for param in ("status", "action", "error", "skip"):  # a value the database no longer has
        ss[f"f_{param}"] = [v for v in ss.get(f"f_{param}", []) if v in vocab[param]]
    for param in ("identity", "cycle", "change"):
        ss.setdefault(f"f_{param}", "")
    is_set = any(ss.get(f"f_{p}") for p in EVENT_FILTER_LABELS)
    with st.expander("Event filters", expanded=is_set, icon=":material/filter_alt:"):
        st.multiselect("Status", vocab["status"], key="f_status", placeholder="Any status",
                       on_change=_drop_notice, args=("status",))
        st.multiselect("Action", vocab["action"], key="f_action", placeholder="Any action",
                       on_change=_drop_notice, args=("action",))
        st.multiselect("Error code", vocab["error"], key="f_error", placeholder="Any error code",
                       on_change=_drop_notice, args=("error",))
        st.multiselect("Skip category", vocab["skip"], key="f_skip", placeholder="Any skip category",
                       on_change=_drop_notice, args=("skip",))
        st.text_input("Identity", key="f_identity", placeholder="UPN, userName or object id",
                      help="The source UPN, the target userName, the source or the target object id: the whole "
                           "value, any case", on_change=_drop_notice, args=("identity",))
        st.text_input("Cycle id", key="f_cycle", placeholder="Any cycle", on_change=_drop_notice, args=("cycle",))
        st.text_input("Change id", key="f_change", placeholder="Any change", on_change=_drop_notice,
                      args=("change",))
    out: dict = {}
    for param in ("status", "action", "error", "skip"):
        if ss[f"f_{param}"]:
            out[param] = tuple(ss[f"f_{param}"])
    for param in ("identity", "cycle", "change"):
        if value := str(ss[f"f_{param}"]).strip():
            out[param] = value
    return out


def url_value(param: str, key: str, default: str = "") -> None:
    """Restore a page widget's state (``key``) from the URL the session started with, once."""
    if key not in st.session_state:
        st.session_state[key] = (st.session_state.get("url_at_start", {}).get(param) or [default])[0]


def keep_in_url(param: str, value: str | None) -> None:
    """Put a page's own state into the URL (the sidebar rewrites the query string on every run)."""
    if value:
        st.query_params[param] = value


def fmt_time(value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT:
        return "never"
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.tz_convert("UTC").strftime("%Y-%m-%d %H:%M UTC")


# Clocks disagree a little (Graph's, the SCIM server's, this machine's): a time up to this far ahead is "now".
FUTURE_TOLERANCE = timedelta(minutes=5)


def _span(minutes: int) -> str:
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // 1440} days"


def fmt_age(value, now: datetime | None = None) -> str:
    """How long ago ``value`` was ("12 min ago"); a time ahead of ``now`` (beyond the tolerance) says so ("3 days
    in the future") instead of passing for "0 min ago"."""
    if value is None or value is pd.NaT or (isinstance(value, float) and pd.isna(value)):
        return "never"
    now = now or datetime.now(timezone.utc)
    delta = now - _utc(value)
    if delta < -FUTURE_TOLERANCE:
        return f"{_span(int(-delta.total_seconds() // 60))} in the future"
    return f"{_span(max(int(delta.total_seconds() // 60), 0))} ago"


def _utc(value) -> datetime:
    ts = pd.Timestamp(value)
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()


def newest_event_before(now: datetime):
    """The end of the newest sync cycle that started before ``now`` (to the minute, so the result is cached for a
    minute), clamped to ``now``: the data's real lag when the newest event is dated in the future."""
    newest = query("newest_cycle_end", Filters(until=now.replace(second=0, microsecond=0))).iloc[0]["newest"]
    return None if newest is None or newest is pd.NaT or pd.isna(newest) else min(_utc(newest), now)


def empty_state(message: str) -> None:
    st.info(message)


def csv_bytes(df: pd.DataFrame) -> bytes:
    """The exports' formula-safe CSV encoding of a frame (the same code as ``python -m queries export``)."""
    from queries import export

    return export.csv_bytes_from_frame(df)


def table(df: pd.DataFrame, name: str, *, column_config: dict | None = None, height: int | str = "auto",
          key: str | None = None, full: Callable[[], bytes] | None = None, **dataframe_args):
    """A table with a formula-safe CSV download of exactly what it shows; long ids go to the right.
    ``full`` (from :func:`full_dataset_csv` / :func:`full_query_csv`): the table shows a bounded part of a
    row set, and the download is the whole set, built only when clicked."""
    df = _ids_last(df)
    shown = st.dataframe(df, hide_index=True, width="stretch", column_config=column_config, height=height,
                         key=key, **dataframe_args)
    _csv_download(df, name, key=key, full=full)
    return shown


def summary_table(df: pd.DataFrame, name: str, *, key: str | None = None) -> None:
    """A small summary (a few rows, e.g. the Overview's top error codes) as a plain HTML table, with the same
    CSV download as :func:`table`: it does not load Streamlit's data grid (pages/html_table.py)."""
    df = _ids_last(df)
    st.html(table_html(df))
    _csv_download(df, name, key=key)


def _ids_last(df: pd.DataFrame) -> pd.DataFrame:
    ids = [c for c in df.columns if c == "id" or c.endswith("_id") or c == "ref"]
    return df[[c for c in df.columns if c not in ids] + ids]


def _csv_download(df: pd.DataFrame, name: str, *, key: str | None, full: Callable[[], bytes] | None = None):
    # the CSV is built on click (a DuckDB COPY per table on every run cost 40-100 ms a table); columns a page added
    # only to show (links, shortened codes: pages/links.py, pages/columns.py) are not data and stay out of it
    df = df.drop(columns=[c for c in df.attrs.get("display_only", ()) if c in df.columns])
    st.download_button(f"Download {'all ' if full else ''}{name} (CSV)", data=full or (lambda: csv_bytes(df)),
                       file_name=f"provlens-{name}.csv", mime="text/csv", key=f"dl_{key or name}",
                       on_click="ignore", icon=":material/download:")


# --- Bounded tables: a page shows at most N rows of a big row set; the CSV download holds all of them ---

def row_cap() -> int | None:
    """``rows=N`` in the URL: show at most N rows in each bounded table (pages pass their own limit)."""
    text = (st.session_state.get("url_at_start", {}).get("rows") or [""])[0]
    return int(text) if text.isdigit() and int(text) > 0 else None


def full_dataset_csv(dataset: str, filters: Filters | None) -> Callable[[], bytes]:
    """The whole export dataset as CSV through the export code (``python -m queries export``), on click."""
    from queries.export import export_bytes

    path = db_path()
    return lambda: export_bytes(path, dataset, filters or Filters(), "csv")[0]


def full_query_csv(name: str, filters: Filters | None, *, where: dict | None = None,
                   drop: tuple[str, ...] = (), **params) -> Callable[[], bytes]:
    """Every row of a named page query (optionally only rows whose columns equal ``where``) as the exports'
    formula-safe CSV, on click."""
    path = db_path()

    def build() -> bytes:
        df = qdb.run(path, name, filters or Filters(), **params)
        for column, value in (where or {}).items():
            df = df[df[column] == value]
        return csv_bytes(df.drop(columns=list(drop)))
    return build


def bounded_caption(shown: int, total: int, what: str, order: str = "newest") -> None:
    """Say how much of the row set the table shows and where the rest is."""
    if shown >= total:
        st.caption(f"Showing all {total:,} {what}.")
    else:
        st.caption(f"Showing the {order} {shown:,} of {total:,} {what} - the full list is in the Export page / "
                   "CSV download.")


TIME_COLUMN = {"format": "YYYY-MM-DD HH:mm"}


def time_columns(*names: str) -> dict:
    """Column config that shows the given timestamp columns as UTC minutes."""
    return {n: st.column_config.DatetimeColumn(n.replace("_", " "), **TIME_COLUMN) for n in names}


@st.fragment(run_every="30s")
def freshness_panel() -> None:
    """Last ingest per source, its outcome and the data lag; refreshes itself every 30 seconds."""
    fresh = query("freshness")
    st.caption("Data freshness")
    if fresh.empty:
        st.write("No ingest has run yet: `python -m ingest files ...` or `python -m ingest graph ...`.")
        return
    newest = fresh["newest_event"].iloc[0]
    now = datetime.now(timezone.utc)
    if newest is not None and newest is not pd.NaT and _utc(newest) - now > FUTURE_TOLERANCE:
        # one event with a wrong clock used to make the lag read "0 min" however old the rest of the data was
        before = newest_event_before(now)
        st.markdown(f"**Newest event** {fmt_time(newest)}: :orange[the newest event is dated in the future "
                    f"({fmt_age(newest, now)}): check the source clock]  \n"
                    f"Newest event up to now: {fmt_time(before)}  \nData lag: {fmt_age(before, now)}",
                    help="The latest activityDateTime in the database is later than this server's clock; the lag "
                         "is counted from the newest sync cycle that started before now")
    else:
        st.markdown(f"**Newest event** {fmt_time(newest)}  \nData lag: {fmt_age(newest, now)}",
                    help="The latest activityDateTime in the database, and how long ago that is")
    for row in fresh.itertuples():
        mark = {"success": ":green", "partial": ":orange"}.get(row.last_outcome, ":red")
        st.markdown(f"**{md_text(row.source)}**: last run {fmt_age(row.last_started)}, "
                    f"{mark}[{md_text(row.last_outcome)}]  \nlast success: {fmt_time(row.last_success)}",
                    help=md_text(row.last_message) if row.last_message else None)
        if isinstance(row.last_warning, str) and row.last_warning:
            st.markdown(f":orange[**Warning** (last {md_text(row.source)} run): {md_text(row.last_warning)}]")
