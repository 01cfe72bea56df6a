"""Sync cycles: every logged cycle per job on a timeline (with the configuration changes of the directory audit log
as markers), counts per action x status, missed cycles and quarantine periods, and the events of a chosen cycle
(layout only)."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from pages import charts, columns, common, links, palette, timebins

MAX_JOB_ROWS = 12  # one chart row per job

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
# Per job, logged cycles per bin stacked by outcome, initial cycles hatched and starred: legible at 1,000+ cycles
# (one bar per bin, not one hairline per cycle). Bins follow the period (pages/timebins.py).
start, end = timebins.period(filters.since, filters.until, cycles["started_at"].min(), cycles["ended_at"].max())
b = timebins.choose(start, end)
binned = common.query("cycles_over_time", filters, bucket=b.name)
jobs = list(dict.fromkeys(binned["job_id"]))[:MAX_JOB_ROWS]
job_apps = dict(zip(binned["job_id"], binned["service_principal_name"].fillna(binned["service_principal_id"])))
sp_jobs = dict(zip(binned["service_principal_id"], binned["job_id"]))  # (a change without a job: the app's job)
fig = make_subplots(rows=len(jobs), cols=1, shared_xaxes=True, vertical_spacing=0.22 / max(len(jobs), 1),
                    subplot_titles=[f"{job_apps[j]} ({j.split('.')[0]} job)" for j in jobs])
shown_legend = set()
for row, job in enumerate(jobs, start=1):
    mine = binned[binned["job_id"] == job]
    for kind in ("incremental", "initial"):
        for outcome, colour in palette.CYCLE_OUTCOME.items():
            part = mine[(mine["kind"] == kind) & (mine["outcome"] == outcome)]
            if part.empty:
                continue
            name = f"{outcome}" + (" (initial cycle)" if kind == "initial" else "")
            fig.add_trace(go.Bar(
                x=part["bucket"], y=part["cycles"], name=name, legendgroup=name, showlegend=name not in shown_legend,
                marker=dict(color=colour, pattern=dict(shape="/" if kind == "initial" else "", fgcolor="#000000",
                                                       solidity=0.35),
                            line=dict(color="#000000" if kind == "initial" else colour, width=1)),
                customdata=part[["events"]].to_numpy(),
                hovertemplate=f"{b.axis_title}: %{{x}}<br>%{{y}} {kind} cycle(s) {outcome}<br>"
                              "%{customdata[0]} event(s)<extra></extra>"), row=row, col=1)
            shown_legend.add(name)
    initial = mine[mine["kind"] == "initial"].groupby("bucket", as_index=False)["cycles"].sum()
    if not initial.empty:  # a star above the bar: an initial cycle is never lost among hundreds of incremental ones
        totals = mine.groupby("bucket")["cycles"].sum()
        fig.add_trace(go.Scatter(
            x=initial["bucket"] + b.span / 2, y=[totals[t] * 1.08 + 0.3 for t in initial["bucket"]],
            mode="markers+text",
            text=["initial"] * len(initial), textposition="top right", textfont=dict(size=11, color=palette.INFO),
            marker=dict(symbol="star", size=14, color=palette.INFO), name="initial cycle",
            legendgroup="initial-star", showlegend="initial-star" not in shown_legend,
            hovertemplate="%{x}: initial cycle (a full import)<extra></extra>"), row=row, col=1)
        shown_legend.add("initial-star")
    top = float(mine.groupby("bucket")["cycles"].sum().max()) * 1.3 + 1
    for p in quarantine[quarantine["job_id"] == job].itertuples():
        fig.add_vrect(x0=p.began, x1=p.ended if p.ended is not pd.NaT else end, fillcolor=palette.FAILURE,
                      opacity=0.15, line_width=0, layer="below", row=row, col=1)
        fig.add_trace(go.Scatter(
            x=[p.began], y=[top], mode="text", text=["quarantine"], textposition="middle right",
            textfont=dict(color=palette.FAILURE, size=11), showlegend=False, customdata=[[p.reason or ""]],
            hovertemplate="quarantine from %{x}<br>%{customdata[0]}<extra></extra>"), row=row, col=1)
    lost = missed[missed["job_id"] == job]
    if not lost.empty:
        fig.add_trace(go.Scatter(
            x=lost["expected_at"], y=[top * 0.8] * len(lost), mode="markers", name="missed cycle", legendgroup="missed",
            showlegend="missed" not in shown_legend, marker=dict(symbol="triangle-up", size=12, color=palette.WARNING,
                                                                 line=dict(color="#000000", width=1)),
            customdata=lost[["gap_minutes"]].to_numpy(),
            hovertemplate="expected %{x}<br>%{customdata[0]} min without a logged cycle<extra></extra>"),
            row=row, col=1)
        shown_legend.add("missed")
    if not changes.empty:  # who changed the configuration, and when (the directory audit log)
        of_job = changes["job_id"].where(changes["job_id"].notna(), changes["service_principal_id"].map(sp_jobs))
        mine_changes = changes[of_job == job]
        if not mine_changes.empty:
            fig.add_trace(go.Scatter(
                x=mine_changes["activity_time"], y=[top * 0.92] * len(mine_changes), mode="markers",
                name="configuration change", legendgroup="change", showlegend="change" not in shown_legend,
                marker=dict(symbol="diamond", size=12, color="#212121"),
                customdata=mine_changes[["activity", "initiated_by_name"]].fillna("").to_numpy(),
                hovertemplate="%{x}<br>%{customdata[0]}<br>by %{customdata[1]}<extra></extra>"), row=row, col=1)
            shown_legend.add("change")
    timebins.style_axis(fig, b, start, end, f"Cycles {b.per}", row=row)
    fig.update_yaxes(range=[0, top * 1.05], row=row, col=1)
    if row < len(jobs):
        fig.update_xaxes(title_text="", row=row, col=1)
fig.update_layout(barmode="stack", height=140 + 230 * len(jobs), margin=dict(t=70, b=10), legend_title_text="",
                  legend=dict(orientation="v", x=1.01, y=1, yanchor="top"),
                  title=f"Logged cycles {b.per} per job, by outcome (UTC)")
fig.update_annotations(font_size=13)
charts.show(fig, "cycle_timeline")
counts = common.query("action_status_counts", filters)
actions = px.bar(counts, x="action", y="events", color="status", title="Events per action and outcome",
                 color_discrete_map=palette.color_map(counts["status"], "status"),
                 labels={"action": "Action", "events": "Events", "status": "Outcome"})
actions.update_layout(barmode="stack", margin=dict(t=50, b=10), legend_title_text="")
gaps = px.scatter(cycles, x="started_at", y="gap_before_min", color="app", title="Minutes since the job's "
                  "previous logged cycle", color_discrete_map=palette.color_map(cycles["app"]),
                  labels={"gap_before_min": "Minutes since the previous cycle", "started_at": "Cycle start (UTC)",
                          "app": "App"})
gaps.add_hline(y=40, line_dash="dot", line_color="#616161")
gaps.update_layout(margin=dict(t=50, b=10), legend_title_text="App")
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
shown = cycles.sort_values("started_at", ascending=False).drop(columns=["service_principal_name"])
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
