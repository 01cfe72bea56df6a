"""Overview: health at a glance for the selected period (layout only)."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from pages import common

filters = st.session_state.get("filters")

st.title("Overview")

fresh = common.query("freshness")
with st.container(border=True):
    st.caption("Data freshness")
    if fresh.empty:
        st.write("No ingest has run yet.")
    else:
        cols = st.columns(len(fresh) + 1)
        cols[0].metric("Newest event", common.fmt_time(fresh["newest_event"].iloc[0]),
                       help="The latest activityDateTime in the database")
        for col, row in zip(cols[1:], fresh.itertuples()):
            col.metric(f"Last {row.source} ingest", common.fmt_age(row.last_started),
                       help=f"Outcome: {row.last_outcome}; last success: {common.fmt_time(row.last_success)}")

kpis = common.query("overview_kpis", filters).iloc[0]
if not kpis["events"]:
    common.empty_state("No provisioning events in this period. Widen the time range in the sidebar, "
                       "or load data with `python -m ingest graph` / `python -m ingest files`.")
    st.stop()

c = st.columns(6)
c[0].metric("Events", f"{int(kpis['events']):,}")
rate = kpis["success_rate"]
c[1].metric("Success rate", "n/a" if rate != rate or rate is None else f"{rate:.1%}",
            help="success / (success + failure); skips are not counted")
c[2].metric("Failures", f"{int(kpis['failure']):,}")
c[3].metric("Skipped", f"{int(kpis['skipped']):,}")
c[4].metric("Identities", f"{int(kpis['identities']):,}", help="Distinct source objects in the period")
c[5].metric("Sync cycles", f"{int(kpis['cycles']):,}")

per_day = common.query("events_per_day_by_status", filters)
fig = px.bar(per_day, x="day", y="events", color="status", title="Events per day by status (UTC)",
             color_discrete_map={"success": "#2e7d32", "failure": "#c62828", "skipped": "#9e9e9e",
                                 "warning": "#f9a825"})
fig.update_layout(barmode="stack", legend_title_text="", margin=dict(t=50, b=10))
st.plotly_chart(fig, width="stretch", key="events_per_day")

st.subheader("Top error codes")
errors = common.query("top_error_codes", filters, limit=10)
if errors.empty:
    st.write("No failures in this period.")
else:
    st.dataframe(errors, hide_index=True, width="stretch", column_config={
        "first_seen": st.column_config.DatetimeColumn("first seen", format="YYYY-MM-DD HH:mm"),
        "last_seen": st.column_config.DatetimeColumn("last seen", format="YYYY-MM-DD HH:mm"),
    })
