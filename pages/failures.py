"""Failures: by error code over time, top errors with the parsed SCIM reply and what to do, and the
identities failing cycle after cycle (layout only)."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from pages import charts, common, palette, timebins

filters = common.page_setup("pages/failures.py")

st.title("Failures")

top = common.query("top_errors", filters)
if top.empty:
    common.empty_state("No failures in this period. Widen the time range in the sidebar or clear the app/job "
                       "filter; if you expected failures, check the freshness panel and run the ingest.")
    st.stop()

if filters.details():
    st.caption("The event filters (sidebar) narrow **Top errors** and **Every failure**; the counts, the chart and "
               "the recurring failures cover every failure of the period, apps and job.")
recurring = common.query("recurring_failures_top", filters, limit=500)
recurring_total = int(common.query("recurring_failures_count", filters).iloc[0]["identities"])
failure_total = int(top["failures"].sum())
kpis = common.query("overview_kpis", filters).iloc[0]
c = st.columns(5)
c[0].metric("Failures", f"{failure_total:,}")
c[1].metric("Error codes", f"{len(top):,}")
c[2].metric("Identities failed", f"{int(kpis['failed_identities']):,}",
            help="Source objects with at least one failure in the period")
c[3].metric("Still failing", f"{int(kpis['failing_identities']):,}",
            help="Of those, the ones whose latest attempt failed: no success since, up to the period's end")
c[4].metric("Recurring", f"{recurring_total:,}",
            help="Still failing, in two or more consecutive cycles (the list below)")

# Bins follow the period (pages/timebins.py); each error code keeps its colour whatever the filter (pages/palette.py).
start, end = timebins.period(filters.since, filters.until, kpis["first_event"], kpis["last_event"])
b = timebins.choose(start, end)
per_bin = common.query("failures_by_code_over_time", filters, bucket=b.name)
fig = px.bar(per_bin, x="bucket", y="failures", color="error_code", title=f"Failures {b.per} by error code (UTC)",
             color_discrete_map=palette.color_map(per_bin["error_code"], "error_code"),
             labels={"bucket": b.axis_title, "failures": f"Failures {b.per}", "error_code": "Error code"})
fig.update_layout(barmode="stack", margin=dict(t=50, b=10), legend_title_text="Error code",
                  legend=dict(orientation="h", y=-0.3))
timebins.style_axis(fig, b, start, end, f"Failures {b.per}")
charts.show(fig, "failures_by_code")

st.subheader("Top errors")
st.caption("SCIM status, scimType and detail are parsed from Entra's \"Web Response\" text; the next retry is "
           "the latest one Entra announced. The action is Microsoft's where Entra gives one, ours otherwise.")
common.table(top, "top-errors", key="top_errors",
             column_config=common.time_columns("first_seen", "last_seen", "next_retry_at")
             | {"recommended_action": st.column_config.TextColumn("recommended action", width="large")})

st.subheader("Recurring failures")
if recurring.empty:
    st.write("No identity is still failing in two or more cycles in a row.")
else:
    st.caption("Identities whose latest attempt failed, in two or more consecutive cycles: only the current run "
               "(since the identity's latest success) is shown, with its length, when it began and its latest "
               "error. Runs that a success ended are history: they stay in the failures table below. "
               "Longest runs first.")
    common.bounded_caption(len(recurring), recurring_total, "identities", order="longest-failing")
    common.table(recurring, "recurring-failures", key="recurring",
                 column_config=common.time_columns("failing_since", "last_failure"),
                 full=common.full_dataset_csv("recurring-failures", filters))

st.subheader("Every failure")
failures = common.query("failures_recent", filters, limit=500)
common.bounded_caption(len(failures), failure_total, "failures")
common.table(failures, "failures", key="failures", height=320,
             column_config=common.time_columns("activity_time", "next_retry_at"),
             full=common.full_dataset_csv("failures", filters))
