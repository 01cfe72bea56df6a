"""The active alerts drawn as a list (layout only): the Overview's attention list and the Alerts page's "Active now"
share it. Each alert: its severity, what is wrong, since when, identities, the recommended action and the link to
the evidence (the dashboard view with its filters)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pages import common

_ICONS = {"critical": ":material/error:", "warning": ":material/warning:", "info": ":material/info:"}


def link(url) -> str | None:
    """The alert's dashboard view (``/failures?...``) as a link relative to the page (``failures?...``), so it also
    works under a base URL path; only a same-site path (never another site or a script)."""
    if isinstance(url, str) and url.startswith("/") and not url.startswith("//") and "\\" not in url:
        return url[1:].replace(" ", "%20").replace(")", "%29").replace("(", "%28") or "./"
    return None


def show(active: pd.DataFrame, *, limit: int | None = None) -> None:
    """One box per active alert, most severe first (the query's order)."""
    for row in active.head(limit).itertuples() if limit else active.itertuples():
        draw = {"critical": st.error, "warning": st.warning}.get(row.severity, st.info)
        since = common.fmt_time(row.first_seen)
        where = row.app or row.job or ""
        what = row.message if not where or row.message.startswith(f"{where}:") else f"{where}: {row.message}"
        count = int(row.identities) if pd.notna(row.identities) else None
        parts = [f"**{common.md_text(row.rule)}** ({common.md_text(row.severity)}) · {common.md_text(what)}",
                 f"Since {since}" + (f" · {count:,} {'identity' if count == 1 else 'identities'}"
                                     if count is not None else "")]
        if isinstance(row.action, str) and row.action:
            parts.append(f"**Action:** {common.md_text(row.action)}")
        draw("  \n".join(parts), icon=_ICONS.get(row.severity, ":material/info:"))
        if target := link(row.url):  # a button, not a markdown link: no live markup in any text (security tests)
            st.link_button("Open the evidence", target, icon=":material/open_in_new:")
    if limit and len(active) > limit:
        st.caption(f"{len(active) - limit} more on the Alerts page.")
