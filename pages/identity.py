"""Identity: find a person by UPN, userName, object id or target id and see one timeline of everything
Entra and the SCIM server say about them (layout only)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from pages import charts, common, links, palette

# One lane per source and operation ("SCIM: user.create"), and inside a lane one row per outcome: a rejected create
# is never drawn under the search that succeeded in the same second (issue 23). Failures are drawn last (on top).
OUTCOME_OFFSET = {"failure": 0.22, "warning": 0.08, "skipped": -0.08, "success": -0.22}
OUTCOME_ORDER = ["success", "skipped", "warning", "failure"]
SOURCE_NAMES = {"entra": "Entra", "scim": "SCIM"}


def timeline_figure(timeline: pd.DataFrame) -> go.Figure:
    """Everything logged about one identity: x the time, y a lane per source and operation."""
    frame = timeline.assign(
        lane=timeline["source"].map(lambda s: SOURCE_NAMES.get(s, s)) + ": " + timeline["action"].fillna("(none)"),
        status=timeline["status"].fillna("unknown"))
    lanes = sorted(frame["lane"].unique(), key=lambda lane: (not lane.startswith("Entra"), lane))
    index = {lane: i for i, lane in enumerate(lanes)}
    fig = go.Figure()
    for status in [s for s in OUTCOME_ORDER if s in set(frame["status"])] + sorted(
            set(frame["status"]) - set(OUTCOME_ORDER)):
        part = frame[frame["status"] == status]
        fig.add_trace(go.Scatter(
            x=part["time"], y=part["lane"].map(index) + OUTCOME_OFFSET.get(status, 0.0), mode="markers",
            name=status, marker=dict(color=palette.STATUS.get(status, palette.NEUTRAL),
                                     size=12 if status == "failure" else 9,
                                     symbol="x" if status == "failure" else "circle",
                                     line=dict(width=1, color="#ffffff")),
            customdata=part[["lane", "app", "detail", "user_name", "ref", "status"]].fillna("").to_numpy(),
            hovertemplate="%{x}<br><b>%{customdata[0]}</b> %{customdata[5]}<br>%{customdata[2]}<br>app "
                          "%{customdata[1]}<br>%{customdata[3]}<br>%{customdata[4]}<extra></extra>"))
    # the range runs downwards: the first lane (Entra's) on top
    fig.update_yaxes(tickvals=list(range(len(lanes))), ticktext=lanes, range=[len(lanes) - 0.4, -0.6],
                     title_text="Source: operation", showgrid=False, zeroline=False)
    for i in range(len(lanes) - 1):  # lane borders
        fig.add_hline(y=i + 0.5, line_color="#e0e0e0", line_width=1)
    fig.update_xaxes(title_text="Time (UTC)")
    fig.update_layout(title="Everything logged (UTC): one lane per operation, failures on top",
                      margin=dict(t=50, b=10), legend_title_text="Outcome", height=160 + 48 * len(lanes))
    return fig


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
fig = timeline_figure(timeline)
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
