"""Overview: health at a glance for the selected period (layout only)."""

from __future__ import annotations

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from pages import alert_cards, charts, common, palette, timebins

filters = common.page_setup("pages/overview.py")


def jobs_and_freshness() -> None:
    """Job status now and data freshness: below the charts (the page's first chart comes first)."""
    st.subheader("Jobs now")
    jobs = common.query("job_status", filters)
    last = common.query("last_cycle", filters).set_index("job_id")
    if jobs.empty:
        st.write("No job status captured yet: `python -m ingest graph` records it with each pull.")
    for job in jobs.itertuples():
        with st.container(border=True):
            c = st.columns([2, 2, 2, 2])
            if job.status_code == "Quarantine":
                c[0].error(f"**{common.md_text(job.service_principal_name or job.service_principal_id)}**: "
                           f"quarantined since {common.fmt_time(job.quarantine_since)}", icon=":material/block:")
                c[1].markdown(f"**Next attempt**  \n{common.fmt_time(job.quarantine_next_attempt)}",
                              help=f"Reason: {common.md_text(job.quarantine_reason)}; "
                                   f"{job.successive_failures} failed runs in a row")
            else:
                c[0].success(f"**{common.md_text(job.service_principal_name or job.service_principal_id)}**: "
                             f"{common.md_text(job.status_code)}",
                             icon=":material/check_circle:")
                c[1].markdown(f"**Last run**  \n{common.fmt_time(job.last_execution_ended)} "
                              f"({common.md_text(job.last_execution_state)})",
                              help=f"Job status captured {common.fmt_time(job.captured_at)}")
            if job.job_id in last.index:
                lc = last.loc[job.job_id]
                c[2].markdown(f"**Last logged cycle**  \n{common.fmt_time(lc['started_at'])}, "
                              f"{common.md_text(lc['kind'])}",
                              help=f"Cycle {common.md_text(lc['cycle_id'])}, {lc['events']} event(s)")
                mark = {"succeeded": ":green", "failed": ":red"}.get(lc["outcome"], ":orange")
                c[3].markdown(f"**Its outcome**  \n{mark}[{common.md_text(lc['outcome'])}]",
                              help=f"{lc['success']} succeeded, {lc['failure']} failed, {lc['skipped']} skipped")
            else:
                c[2].markdown("**Last logged cycle**  \nnone in this period")

    fresh = common.query("freshness")
    with st.container(border=True):
        st.caption("Data freshness")
        if fresh.empty:
            st.write("No ingest has run yet.")
        else:
            cols = st.columns(len(fresh) + 1)
            newest = fresh["newest_event"].iloc[0]
            cols[0].metric("Newest event", common.fmt_time(newest),
                           help="The latest activityDateTime in the database" + (
                               "; it is dated in the future: check the source clock"
                               if common.fmt_age(newest).endswith("in the future") else ""))
            for col, row in zip(cols[1:], fresh.itertuples()):
                col.metric(f"Last {common.md_text(row.source)} ingest", common.fmt_age(row.last_started),
                           help=f"Outcome: {common.md_text(row.last_outcome)}; last success: "
                                f"{common.fmt_time(row.last_success)}" + (
                                    f"; warning: {common.md_text(row.last_warning)}"
                                    if isinstance(row.last_warning, str) and row.last_warning else ""))


st.title("Overview")
active_alerts = common.query("alerts_active")
if not active_alerts.empty:  # the attention list: the alerts active now (issue 24)
    st.subheader(f"Needs attention ({len(active_alerts)})")
    alert_cards.show(active_alerts, limit=5)
resolved_alerts = common.query("alerts_resolved", filters)
if not resolved_alerts.empty:  # incidents of the period that are over, apart from what is broken now
    with st.expander(f"Resolved in this period ({len(resolved_alerts)})", icon=":material/check_circle:"):
        common.table(resolved_alerts.drop(columns=["key", "episode_id"]).assign(url=resolved_alerts["url"].map(
                     alert_cards.link)), "alerts-resolved",
                     column_config={"url": st.column_config.LinkColumn("evidence", display_text="open")})
elif common.on_lake():
    st.caption("Alerts are not in the lake: they stay with each tenant's own store (see the Alerts page).")
elif active_alerts.empty and not int(common.query("alert_counts").iloc[0]["episodes"]):
    st.caption("No alert recorded for this database: the alert rules run after each ingest when provlens.toml has "
               "an `[alerts]` table, or with `python -m ingest alerts` (README, \"Get alerted\").")
kpis = common.query("overview_kpis", filters).iloc[0]
if not kpis["events"]:
    common.empty_state("No provisioning events in this period. Widen the time range in the sidebar, "
                       "or load data with `python -m ingest graph` / `python -m ingest files`.")
    jobs_and_freshness()
    st.stop()

violations = common.query("violations_summary", filters)
open_violations = int(violations.loc[violations["state"] == "open", "violations"].sum())

c = st.columns(5)
c[0].metric("Events", f"{int(kpis['events']):,}")
rate = kpis["success_rate"]
c[1].metric("Success rate", "n/a" if rate != rate or rate is None else f"{rate:.1%}",
            help="success / (success + failure); skips are not counted")
c[2].metric("Failures", f"{int(kpis['failure']):,}")
c[3].metric("Skipped", f"{int(kpis['skipped']):,}")
c[4].metric("Sync cycles", f"{int(kpis['cycles']):,}", help="Cycles with at least one logged event")
c = st.columns(5)
c[0].metric("Identities", f"{int(kpis['identities']):,}", help="Distinct source objects in the period")
c[1].metric("Failed in this period", f"{int(kpis['failed_identities']):,}",
            help="Identities with at least one failure in the period")
c[2].metric("Failing now", f"{int(kpis['failing_identities']):,}",
            help="Of those, the identities whose latest attempt failed: no success since, up to the period's end")
c[3].metric("Open violations", f"{open_violations:,}", help="Duplicate userName, non-work email and other "
            "rejected values not yet followed by a success (see Constraint violations)")

# Bins follow the period (pages/timebins.py): hourly up to 2 days, daily up to 90, weekly above.
start, end = timebins.period(filters.since, filters.until, kpis["first_event"], kpis["last_event"])
b = timebins.choose(start, end)
per_bin = common.query("events_by_status_over_time", filters, bucket=b.name)
per_bin["status"] = per_bin["status"].fillna("unknown")
events_chart = px.bar(per_bin, x="bucket", y="events", color="status", title=f"Events {b.per} by outcome (UTC)",
                      color_discrete_map=palette.color_map(per_bin["status"], "status"),
                      category_orders={"status": ["failure", "warning", "skipped", "success"]},
                      labels={"bucket": b.axis_title, "events": f"Events {b.per}", "status": "Outcome"})
events_chart.update_layout(barmode="stack", legend_title_text="Outcome", margin=dict(t=50, b=10))
timebins.style_axis(events_chart, b, start, end, f"Events {b.per}")

trend = timebins.complete(common.query("success_rate_over_time", filters, bucket=b.name), b, start, end)
trend_chart = go.Figure(go.Scatter(  # a point in the middle of its bin, above the bar of the same bin
    x=trend["bucket"] + b.span / 2, y=trend["success_rate"], mode="lines+markers", connectgaps=False,
    name="Success rate",
    line=dict(color=palette.SUCCESS), marker=dict(color=palette.SUCCESS, size=6),
    customdata=trend[["success", "failure"]].fillna(0).astype(int).assign(
        bin=trend["bucket"].dt.strftime("%Y-%m-%d %H:%M UTC")).to_numpy(),
    hovertemplate="%{customdata[2]}<br>%{y:.1%} succeeded<br>%{customdata[0]} succeeded, %{customdata[1]} failed"
                  "<extra></extra>"))
trend_chart.update_layout(title=f"Success rate {b.per} (UTC); gaps: no successes or failures",
                          yaxis_tickformat=".0%", yaxis_range=[0, 1.05], margin=dict(t=50, b=10))
timebins.style_axis(trend_chart, b, start, end, "Success rate", bars=False)
trend_chart.update_yaxes(range=[0, 1.05], rangemode=None)
charts.show_row([(events_chart, "events_per_day"), (trend_chart, "success_trend")])

jobs_and_freshness()

st.subheader("Top error codes")
errors = common.query("top_error_codes", filters, limit=10)
if errors.empty:
    st.write("No failures in this period.")
else:
    common.summary_table(errors, "top-errors")

if not violations.empty:
    st.subheader("Constraint violations")
    common.summary_table(violations, "violations-summary")

# Configuration changes (issue 24: the directory audit log): the latest few, who and when.
changes = common.query("config_changes_recent", filters, limit=5)
if not changes.empty:
    st.subheader("Recent configuration changes")
    common.summary_table(changes, "config-changes-recent")
