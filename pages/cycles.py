"""Sync cycles: every logged cycle per job on a timeline (with the configuration changes of the directory audit log
as markers), counts per action x status, missed cycles and quarantine periods, and the events of a chosen cycle
(layout only)."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from pages import charts, columns, common, links

filters = common.page_setup("pages/cycles.py")

st.title("Sync cycles")
st.caption("Entra runs each provisioning job every 40 minutes (daily while quarantined) and logs only the "
           "cycles that changed or tried to change something.")

cycles = common.query("cycles_timeline", filters)
if cycles.empty:
    common.empty_state("No sync cycles in this period. Widen the time range in the sidebar, clear the app or "
                       "job filter, or load data with `python -m ingest graph` / `python -m ingest files`.")
    st.stop()

missed = common.query("missed_cycles", filters)
quarantine = common.query("quarantine_periods", filters)
changes = common.query("config_changes", filters)

c = st.columns(4)
c[0].metric("Logged cycles", f"{len(cycles):,}")
c[1].metric("Initial cycles", f"{int((cycles['kind'] == 'initial').sum()):,}")
c[2].metric("Missed cycles", f"{len(missed):,}", help="Runs later than 1.5 x 40 min outside quarantine")
c[3].metric("Quarantine periods", f"{len(quarantine):,}")

cycles["app"] = cycles["service_principal_name"].fillna(cycles["service_principal_id"])
cycles["end"] = cycles["ended_at"].where(cycles["duration_s"] >= 60,
                                         cycles["started_at"] + pd.Timedelta(seconds=60))
fig = px.timeline(cycles, x_start="started_at", x_end="end", y="app", color="kind",
                  hover_data=["cycle_id", "events", "success", "failure", "skipped", "gap_before_min"],
                  title="Cycles per job (UTC); red bands: quarantine, orange lines: missed cycles, "
                        "black diamonds: configuration changes",
                  color_discrete_map={"initial": "#1565c0", "incremental": "#26a69a"})
for p in quarantine.itertuples():
    fig.add_vrect(x0=p.began, x1=p.ended if p.ended is not pd.NaT else cycles["ended_at"].max(),
                  fillcolor="#c62828", opacity=0.15, line_width=0,
                  annotation_text=f"quarantine: {p.service_principal_name or p.job_id}",
                  annotation_position="top left", annotation_font_size=10)
for m in missed.itertuples():
    fig.add_vline(x=m.expected_at, line_color="#ef6c00", line_dash="dot")
if not changes.empty:  # who changed the configuration, and when (the directory audit log)
    fig.add_trace(go.Scatter(
        x=changes["activity_time"], y=changes["service_principal_name"].fillna(changes["service_principal_id"]),
        mode="markers", name="configuration change", marker=dict(symbol="diamond", size=11, color="#212121"),
        customdata=changes[["activity", "initiated_by_name"]].fillna("").to_numpy(),
        hovertemplate="%{x}<br>%{customdata[0]}<br>by %{customdata[1]}<extra></extra>"))
fig.update_layout(margin=dict(t=50, b=10), legend_title_text="")
charts.show(fig, "cycle_timeline")

counts = common.query("action_status_counts", filters)
actions = px.bar(counts, x="action", y="events", color="status", title="Events per action and status",
                 color_discrete_map={"success": "#2e7d32", "failure": "#c62828", "skipped": "#9e9e9e",
                                     "warning": "#f9a825"})
actions.update_layout(barmode="stack", margin=dict(t=50, b=10), legend_title_text="")
gaps = px.scatter(cycles, x="started_at", y="gap_before_min", color="app", title="Minutes since the job's "
                  "previous logged cycle", labels={"gap_before_min": "gap (min)", "started_at": ""})
gaps.add_hline(y=40, line_dash="dot", line_color="#616161")
gaps.update_layout(margin=dict(t=50, b=10), legend_title_text="")
charts.show_row([(actions, "action_status"), (gaps, "cycle_gaps")])

st.subheader("Missed cycles and quarantine")
mc, qc = st.columns(2)
with mc:
    if missed.empty:
        st.write("No missed cycles in this period.")
    else:
        common.table(missed, "missed-cycles", column_config=columns.labelled(
            missed.columns, ("expected_at", "previous_began", "next_began")))
with qc:
    if quarantine.empty:
        st.write("No quarantine in this period.")
    else:
        common.table(quarantine, "quarantine-periods", column_config=columns.labelled(
            quarantine.columns, ("began", "ended", "last_next_attempt")))
        st.caption("source: the job status snapshots provlens took, or the directory audit log (quarantine before "
                   "the snapshots began, or between two of them)")

if not changes.empty:
    st.subheader("Configuration changes")
    common.table(changes, "config-changes", column_config=columns.labelled(changes.columns, ("activity_time",)))

st.subheader("Cycles")
first = ["started_at", "app", "kind", "events", "success", "failure", "skipped", "duration_s", "gap_before_min"]
shown = cycles.sort_values("started_at", ascending=False).drop(columns=["end", "service_principal_name"])
shown = shown[first + [c for c in shown.columns if c not in first]]
pick = common.table(shown, "cycles", column_config=columns.labelled(shown.columns, ("started_at", "ended_at")),
                    key="cycles",
                    height=300, on_select="rerun", selection_mode="single-row")

labels = {r.cycle_id: f"{common.fmt_time(r.started_at)} · {r.app} · {r.kind} · {r.events} event(s)"
          for r in cycles.sort_values("started_at", ascending=False).itertuples()}
common.url_value("cycle", "cycle_pick")  # a cycle picked here, or linked from an event, is in the URL
if st.session_state.get("cycle_pick") not in labels:
    if st.session_state.get("cycle_pick"):
        st.info(f"Cycle {common.md_text(st.session_state['cycle_pick'])} is not in this period or app/job filter: "
                "showing the newest cycle. Widen the time range in the sidebar to see it.",
                icon=":material/event_busy:")
    st.session_state["cycle_pick"] = next(iter(labels))
rows = getattr(getattr(pick, "selection", None), "rows", None) or []
clicked = shown.iloc[rows[0]]["cycle_id"] if rows else None
if clicked and clicked != st.session_state.get("cycle_clicked"):  # a new click in the table wins once
    st.session_state["cycle_pick"] = clicked
st.session_state["cycle_clicked"] = clicked
chosen = st.selectbox("Events of cycle", list(labels), format_func=labels.get, key="cycle_pick",
                      help="Or click a row in the table above")
common.keep_in_url("cycle", chosen)
events = common.query("cycle_events_first", filters, cycle_id=chosen, limit=1000)
common.bounded_caption(len(events), int(cycles.loc[cycles["cycle_id"] == chosen, "events"].sum()), "events",
                       order="first")
common.table(columns.with_short_code(links.with_event_link(links.with_identity_link(events))), "cycle-events",
             key="cycle_events",
             column_order=[links.IDENTITY_COLUMN, "action", "status", "error_short", "skip_category", "scim_type",
                           "activity_time", links.EVENT_COLUMN, "error_code", "user_name", "target_id", "source_id",
                           "id"],
             column_config=links.identity_column() | links.event_column() | columns.short_code_column() | {
                 "activity_time": st.column_config.DatetimeColumn("Time (UTC)", **common.TIME_COLUMN),
                 "action": "Action", "status": "Status",
                 "error_code": st.column_config.TextColumn("Error code (full)", width="medium"),
                 "skip_category": "Skip category", "scim_type": "scimType", "user_name": "userName",
                 "target_id": "Target id", "source_id": "Object id", "id": "Event id"},
             full=common.full_query_csv("cycle_events", filters, cycle_id=chosen))
