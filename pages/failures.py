"""Failures: by error code over time, top errors with the parsed SCIM reply and what to do, and the
identities failing cycle after cycle (layout only)."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from pages import charts, columns, common, links, palette, timebins

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
common.table(columns.with_short_code(top), "top-errors", key="top_errors",
             column_order=["error_short", "recommended_action", "failures", "identities", "scim_detail",
                           "next_retry_at", "http_status", "scim_type", "first_seen", "last_seen", "error_code"],
             column_config=columns.short_code_column() | {
                 "error_code": st.column_config.TextColumn("Error code (full)", width="medium"),
                 "recommended_action": st.column_config.TextColumn("What to do", width=columns.WIDTHS["action"]),
                 "failures": st.column_config.NumberColumn("Failures", width="small"),
                 "identities": st.column_config.NumberColumn("Identities", width="small"),
                 "http_status": st.column_config.NumberColumn("HTTP", width="small", format="%d",
                                                              help="The SCIM reply's HTTP status"),
                 "scim_type": st.column_config.TextColumn("scimType", width="small"),
                 "scim_detail": st.column_config.TextColumn("SCIM detail", width=190,
                                                            help="The app's own words (click a cell for all of it)"),
                 "next_retry_at": st.column_config.DatetimeColumn("Next retry (UTC)", width=columns.WIDTHS["time"],
                                                                  **common.TIME_COLUMN),
                 "first_seen": st.column_config.DatetimeColumn("First seen (UTC)", **common.TIME_COLUMN),
                 "last_seen": st.column_config.DatetimeColumn("Last seen (UTC)", **common.TIME_COLUMN)})

st.subheader("Recurring failures")
if recurring.empty:
    st.write("No identity is still failing in two or more cycles in a row.")
else:
    st.caption("Identities whose latest attempt failed, in two or more consecutive cycles: only the current run "
               "(since the identity's latest success) is shown, with its length, when it began and its latest "
               "error. Runs that a success ended are history: they stay in the failures table below. "
               "Longest runs first.")
    common.bounded_caption(len(recurring), recurring_total, "identities", order="longest-failing")
    common.table(columns.with_short_code(links.with_admin_link(links.with_identity_link(recurring))),
                 "recurring-failures", key="recurring",
                 column_order=[links.IDENTITY_COLUMN, "recommended_action", "consecutive_cycles", "error_short",
                               "failing_since", links.ADMIN_COLUMN, "last_failure", "error_code", "user_name",
                               "source_id", "service_principal_id", "job_id"],
                 column_config=links.identity_column() | links.admin_column()
                 | columns.short_code_column("Latest error") | {
                     "recommended_action": st.column_config.TextColumn("What to do", width=columns.WIDTHS["action"]),
                     "consecutive_cycles": st.column_config.NumberColumn(
                         "Cycles", width="small", help="Consecutive cycles the identity has failed in"),
                     "error_code": st.column_config.TextColumn("Latest error (full code)", width="medium"),
                     "failing_since": st.column_config.DatetimeColumn(
                         "Failing since (UTC)", width=columns.WIDTHS["time"], **common.TIME_COLUMN),
                     "last_failure": st.column_config.DatetimeColumn("Last failure (UTC)", **common.TIME_COLUMN),
                     "user_name": "userName", "source_id": "Object id", "service_principal_id": "App id",
                     "job_id": "Job id"},
                 full=common.full_dataset_csv("recurring-failures", filters))

st.subheader("Every failure")
failures = common.query("failures_recent", filters, limit=500)
common.bounded_caption(len(failures), failure_total, "failures")
FAILURE_LABELS = {"scim_detail": "SCIM detail", "http_status": "HTTP status", "scim_type": "scimType",
                  "next_retry_at": "Next retry", "error_reason": "Reason (Entra's text)", "user_name": "userName",
                  "service_principal_name": "App", "action": "Action", "consecutive_cycles": "Cycles failing",
                  "error_category": "Error category", "source_name": "Display name", "source_type": "Identity type",
                  "target_type": "Target type", "target_id": "Target id", "source_id": "Object id",
                  "cycle_id": "Cycle id", "change_id": "Change id", "job_id": "Job id", "tenant_id": "Tenant id",
                  "service_principal_id": "App id", "duration_ms": "Duration (ms)", "id": "Event id"}
FAILURE_LABELS["error_code"] = "Error code (full)"
extra = columns.more_columns("failures", [c for c in FAILURE_LABELS if c not in ("action", "service_principal_name")],
                           FAILURE_LABELS)
common.table(columns.with_short_code(links.with_admin_link(links.with_event_link(links.with_identity_link(failures)))),
             "failures", key="failures", height=320,
             column_order=[links.IDENTITY_COLUMN, "recommended_action", "error_short", "activity_time",
                           links.EVENT_COLUMN, links.ADMIN_COLUMN, "service_principal_name", "action", *extra],
             column_config=links.identity_column() | links.event_column() | links.admin_column()
             | columns.short_code_column()
             | {c: st.column_config.Column(label) for c, label in FAILURE_LABELS.items()} | {
                 "recommended_action": st.column_config.TextColumn("What to do", width=columns.WIDTHS["action"]),
                 "activity_time": st.column_config.DatetimeColumn("Time (UTC)", width=columns.WIDTHS["time"],
                                                                  **common.TIME_COLUMN),
                 "next_retry_at": st.column_config.DatetimeColumn("Next retry (UTC)", **common.TIME_COLUMN)},
             full=common.full_dataset_csv("failures", filters))
