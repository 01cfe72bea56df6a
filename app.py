"""provlens dashboard entry point: ``streamlit run app.py``.

Builds the demo database on first start when the configured one does not exist, draws the shared
sidebar (filters kept in the URL, data freshness) and hands over to the page the user picked. With
``PROVLENS_LAKE`` it reads a lake instead, one tenant at a time (pages/lake.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from ingest.config import ConfigError
from ingest.store import StoreError
from pages import auth, common, lake  # auth: the sign-in gate (issue 8)

# The favicon is a local file (served by Streamlit itself): a ":material/...:" icon made every page load fetch it
# from fonts.gstatic.com, which fails offline (issue 23).
FAVICON = Path(__file__).resolve().parent / "static" / "favicon.png"
st.set_page_config(page_title="provlens", page_icon=str(FAVICON), layout="wide")


@st.cache_resource(show_spinner=False)
def _ensure_database(path: str) -> str | None:
    """Build the demo database once per server when the configured file does not exist."""
    if os.path.exists(path):
        return None
    from ingest.demo import build_demo

    build_demo(path, quiet=True)
    return path


PAGES = [
    st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("pages/events.py", title="Events", icon=":material/list_alt:", url_path="events"),
    st.Page("pages/cycles.py", title="Sync cycles", icon=":material/autorenew:", url_path="cycles"),
    st.Page("pages/failures.py", title="Failures", icon=":material/error:", url_path="failures"),
    st.Page("pages/skipped.py", title="Skipped", icon=":material/block:", url_path="skipped"),
    st.Page("pages/violations.py", title="Constraint violations", icon=":material/rule:", url_path="violations"),
    st.Page("pages/scim.py", title="SCIM audit", icon=":material/dns:", url_path="scim"),
    st.Page("pages/preflight.py", title="Preflight", icon=":material/flight_takeoff:", url_path="preflight"),
    st.Page("pages/identity.py", title="Identity", icon=":material/person_search:", url_path="identity"),
    st.Page("pages/alerts.py", title="Alerts", icon=":material/notifications:", url_path="alerts"),
    st.Page("pages/export.py", title="Export", icon=":material/download:", url_path="export"),
    # issue 23: one event's details, opened from the tables' event links (/event?id=...)
    st.Page("pages/event.py", title="Event", icon=":material/receipt_long:", url_path="event"),
]


def database_or_demo(path: str) -> None:
    """A database file that does not exist: the demo is built (or, with PROVLENS_NO_DEMO=1, the page says wait)."""
    if os.path.exists(path):
        return
    if os.environ.get("PROVLENS_NO_DEMO") == "1":
        # `provlens dashboard --read-only`: a scheduled ingest writes this database; the dashboard never does
        st.info(f"No database at {common.md_text(path)} yet: the ingest job creates it on its first run "
                "(`provlens ingest run`). This page shows it once it exists.", icon=":material/hourglass_top:")
        st.stop()
    with st.spinner(f"No database at {path} yet: building the demo database from the simulator..."):
        try:
            _ensure_database(path)
        except StoreError as exc:
            st.error(f"Could not build the demo database: {common.md_text(exc)}")
            st.stop()


def main() -> None:
    auth.require_login()  # issue 8: nothing below runs (no data is read) until the visitor may see it
    if url := lake.lake_url():  # issue 28: a lake, read-only; the pages read the chosen tenant's local copy
        lake.tenant_database(url, lake.pick_tenant(url))
    else:
        try:
            path = common.db_path()
        except ConfigError as exc:  # e.g. a MotherDuck md: path, which provlens does not support
            st.error(f"The database setting cannot be used: {common.md_text(exc)}")
            st.stop()
        database_or_demo(path)
    meta = dict(common.query("meta").itertuples(index=False, name=None))
    if meta.get("demo") == "true":
        st.info(
            "**Demo data.** This dashboard shows a simulated Leapsome tenant "
            f"({common.md_text(meta.get('demo_users', '?'))} users, {common.md_text(meta.get('demo_days', '?'))} "
            f"days, seed {common.md_text(meta.get('demo_seed', '?'))}). To load your tenant, run "
            "`python -m ingest graph ...` or "
            "`python -m ingest files EXPORT.json` with `PROVLENS_DB` pointing at a new database "
            "(see the README).",
            icon=":material/science:",
        )
    if common.query("summaries_pending").iloc[0]["runs"]:  # Store._derived_refresh: a fast pull catches up at its end
        st.warning(
            "**Some summaries are behind the events.** An ingest run loaded events whose summaries (cycles, "
            "failures, skips, identity search) are brought up to date at the run's end. If no ingest is running, "
            "one was interrupted: the next ingest run, or `python -m ingest migrate`, catches them up.",
            icon=":material/hourglass_top:",
        )
    filters = common.sidebar_filters()
    st.session_state["filters"] = filters
    with st.sidebar:
        st.divider()
        common.freshness_panel()
    nav = st.navigation(PAGES)
    common.follow_deep_link()
    nav.run()


main()
