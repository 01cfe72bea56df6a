"""The dashboard over a lake (``PROVLENS_LAKE``): the sidebar's tenant picker, and the tenant's local copy that the
pages read (ingest/lake/cache.py builds it; this module only says so on the page and remembers the path).

One tenant at a time: the summaries, run ids and cycle ids of two tenants would mix in one view. The choice is in
the URL (``tenant=``) like the other filters. A session checks the lake's versions when it starts and again every
``LAKE_CHECK_S`` seconds; the copy is built again only when the lake changed.
"""

from __future__ import annotations

import os
import time

import streamlit as st

LAKE_ENV = "PROVLENS_LAKE"
LAKE_CHECK_S = 60.0


def lake_url() -> str | None:
    """The lake the dashboard reads (``PROVLENS_LAKE``), or None for a database file."""
    return os.environ.get(LAKE_ENV, "").strip() or None


@st.cache_data(ttl=LAKE_CHECK_S, show_spinner=False)
def _tenants(url: str) -> list[str]:
    from queries.lake_read import lake_tenants

    return lake_tenants(url)


def _lake_error(url: str, exc: Exception) -> None:
    from pages.common import md_text

    first = str(exc).splitlines()[0] if str(exc) else ""
    st.error(f"The lake {md_text(url)} cannot be read ({type(exc).__name__}: {md_text(first[:300])}). Check "
             f"{LAKE_ENV} and, for Azure, the AZURE_STORAGE_* variables; `python -m queries lake` writes a lake.",
             icon=":material/cloud_off:")
    st.stop()


def pick_tenant(url: str) -> str:
    """The sidebar's tenant picker (first in the sidebar); its choice is restored from and kept in the URL."""
    from pages.common import md_text, url_notice

    try:
        tenants = _tenants(url)
    except Exception as exc:  # noqa: BLE001 - a missing or unreadable lake: one line on the page
        _lake_error(url, exc)
    if not tenants:
        st.info(f"The lake {md_text(url)} holds no tenant yet: `python -m queries lake --db F --to URL` copies a "
                "store into it.", icon=":material/hourglass_top:")
        st.stop()
    ss = st.session_state
    if "url_at_start" not in ss:
        ss.url_at_start = {k: st.query_params.get_all(k) for k in st.query_params}
    if "f_tenant" not in ss:
        wanted = (ss.url_at_start.get("tenant") or [""])[0]
        ss.f_tenant = wanted if wanted in tenants else tenants[0]
        if wanted and wanted not in tenants:
            url_notice("tenant", wanted, f"not a tenant of this lake; showing {md_text(tenants[0])}.")
    if ss.f_tenant not in tenants:  # gone from the lake since
        ss.f_tenant = tenants[0]
    with st.sidebar:
        st.selectbox("Tenant", tenants, key="f_tenant",
                     help="The lake's tenants; the dashboard shows one at a time (its own copy of the tenant's "
                          "rows, rebuilt when the lake changes)")
    return ss.f_tenant


def tenant_database(url: str, tenant: str) -> str:
    """The path of ``tenant``'s local copy, built first (with a spinner) when the lake changed since it was."""
    from ingest.lake import cache

    ss = st.session_state
    checked = ss.get("lake_checked")
    if checked and checked[:2] == (url, tenant) and time.monotonic() - checked[2] < LAKE_CHECK_S:
        return checked[3]
    try:
        tables = cache.open_lake(url, tenant)
        if not cache.is_current(tables):
            with st.spinner(f"Building tenant {tenant}'s view from the lake (a local copy of its rows and "
                            "summaries; once per change of the lake)...", show_time=True):
                cache.build(tables)
    except Exception as exc:  # noqa: BLE001 - the lake or the cache folder: one line on the page
        _lake_error(url, exc)
    ss.lake_checked = (url, tenant, time.monotonic(), tables.path)
    return tables.path


def current_database() -> str | None:
    """The local copy this session reads (set by app.py), or None before app.py ran."""
    checked = st.session_state.get("lake_checked")
    return checked[3] if checked else None
