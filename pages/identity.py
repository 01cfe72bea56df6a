"""Identity: find a person by UPN, userName, object id or target id and see one timeline of everything
Entra and the SCIM server say about them (layout only)."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from pages import charts, common, links

filters = common.page_setup("pages/identity.py")

st.title("Identity")

common.url_value("q", "identity_term")
term = st.text_input("Search", key="identity_term", placeholder="UPN, userName, Entra object id or target id",
                     help="Part of a UPN or userName, or an exact object id / SCIM id").strip()
common.keep_in_url("q", term)
if not term:
    common.empty_state("Type a UPN (e.g. `jane.doe@contoso.com`), a SCIM userName, an Entra object id or the "
                       "app's id for the account.")
    st.stop()

found = common.query("identity_search", filters, term=term)
if found.empty:
    common.empty_state(f"Nobody matches \"{common.md_text(term)}\" in this period. Widen the time range in the "
                       "sidebar, clear the app/job filter, or check the spelling.")
    st.stop()

common.table(found, "identity-matches", key="identity_matches",
             column_config=common.time_columns("first_seen", "last_seen"))
labels = {r.source_id: f"{r.source_upn or r.source_name or r.source_id} ({r.events} event(s))"
          for r in found.itertuples()}
common.url_value("pick", "identity_pick")  # a link from another page picks its identity (pages/links.py)
if st.session_state.get("identity_pick") not in labels:
    st.session_state["identity_pick"] = next(iter(labels))
source_id = st.selectbox("Identity", list(labels), format_func=labels.get, key="identity_pick",
                         disabled=len(labels) == 1)
common.keep_in_url("pick", source_id)

timeline = common.query("identity_events", filters, source_id=source_id)
scim_note = None
if common.has_rows("scim_requests") and "identity_scim_requests" in common.query_names():
    scim = common.query("identity_scim_requests", filters, source_id=source_id)
    timeline = pd.concat([timeline, scim], ignore_index=True) if not scim.empty else timeline
else:
    scim_note = "SCIM audit trail not loaded: load it with `python -m ingest scim PATH` to see the app's side."

st.subheader(f"Timeline of {common.md_text(labels[source_id])}")
if scim_note:
    st.caption(scim_note)
fig = px.scatter(timeline, x="time", y="source", color="status", symbol="action",
                 hover_data=["app", "action", "detail", "user_name", "ref"], title="Everything logged (UTC)",
                 color_discrete_map={"success": "#2e7d32", "failure": "#c62828", "skipped": "#9e9e9e",
                                     "warning": "#f9a825"})
fig.update_traces(marker_size=11)
fig.update_layout(margin=dict(t=50, b=10), legend_title_text="", height=300)
charts.show(fig, "identity_timeline")
timeline = links.with_event_link(timeline.sort_values("time", ascending=False), event_id="ref",
                                 where=timeline.sort_values("time", ascending=False)["source"] == "entra")
common.table(timeline, "identity-timeline", key="identity_timeline_table",
             column_order=["time", links.EVENT_COLUMN, "source", "app", "action", "status", "detail", "user_name",
                           "target_id", "cycle_id", "ref"],
             column_config=common.time_columns("time") | links.event_column() | {
                 "time": st.column_config.DatetimeColumn("Time (UTC)", **common.TIME_COLUMN),
                 "source": st.column_config.TextColumn("Log", help="entra: the provisioning log; scim: the app's "
                                                                   "SCIM audit trail", width="small"),
                 "app": "App", "action": "Action", "status": "Status",
                 "detail": st.column_config.TextColumn("Error / detail", width="large"),
                 "user_name": "userName", "target_id": "Target id", "cycle_id": "Cycle id",
                 "ref": st.column_config.TextColumn("Event / request id", width="small")})
