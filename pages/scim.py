"""SCIM audit: what the SCIM server saw, and how it lines up with Entra's log (layout only)."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from pages import charts, common, links, palette, timebins

filters = common.page_setup("pages/scim.py")

st.title("SCIM audit")
st.caption("The SCIM server's own request log: requests by operation and status, latency, errors by scimType, "
           "token trouble (401/403), probes, and how each request matches Entra's provisioning log. SCIM "
           "requests carry no enterprise app, so only the time range applies to them.")

if not common.has_rows("scim_requests"):
    common.empty_state("No SCIM audit trail in this database. Load the server's audit log with "
                       "`python -m ingest scim PATH` (JSONL or CSV; see the README), then reload this page.")
    st.stop()

kpis = common.query("scim_kpis", filters).iloc[0]
if not kpis["requests"]:
    common.empty_state("No SCIM requests in this period. Widen the time range in the sidebar, or load a newer "
                       "audit log with `python -m ingest scim PATH`.")
    st.stop()

unlogged = common.query("scim_unlogged_requests_first", filters, limit=500)
unlogged_total = int(common.query("scim_unlogged_count", filters).iloc[0]["requests"])
c = st.columns(6)
c[0].metric("Requests", f"{int(kpis['requests']):,}")
c[1].metric("Errors", f"{int(kpis['errors']):,}", help="HTTP status 400 or higher")
c[2].metric("401/403", f"{int(kpis['auth_failures']):,}", help="Token trouble: an expired or revoked secret")
c[3].metric("Probes", f"{int(kpis['probes']):,}", help="Entra's health checks (a userName filter on a random GUID)")
c[4].metric("p95 latency", "n/a" if kpis["p95_ms"] != kpis["p95_ms"] else f"{kpis['p95_ms']:.0f} ms")
c[5].metric("Not logged by Entra", f"{unlogged_total:,}", help="Requests Entra never logged, probes excluded")

# Bins follow the period (pages/timebins.py): hourly up to 2 days, daily up to 90, weekly above.
start, end = timebins.period(filters.since, filters.until, kpis["first_request"], kpis["last_request"])
b = timebins.choose(start, end)
over_time = common.query("scim_requests_over_time", filters, bucket=b.name)
labels = {"bucket": b.axis_title, "requests": f"Requests {b.per}", "operation": "Operation",
          "status_class": "HTTP status"}
by_operation = px.bar(over_time, x="bucket", y="requests", color="operation", labels=labels,
                      title=f"Requests {b.per} by operation (UTC)",
                      color_discrete_map=palette.color_map(over_time["operation"], "operation"))
by_operation.update_layout(barmode="stack", margin=dict(t=50, b=10), legend_title_text="Operation")
timebins.style_axis(by_operation, b, start, end, f"Requests {b.per}")
by_status = px.bar(over_time, x="bucket", y="requests", color="status_class", labels=labels,
                   title=f"Requests {b.per} by HTTP status (UTC)",
                   category_orders={"status_class": ["5xx", "4xx", "3xx", "2xx"]},
                   color_discrete_map=palette.STATUS_CLASS)
by_status.update_layout(barmode="stack", margin=dict(t=50, b=10), legend_title_text="HTTP status")
timebins.style_axis(by_status, b, start, end, f"Requests {b.per}")
charts.show_row([(by_operation, "scim_by_operation"), (by_status, "scim_by_status")])

st.subheader("Latency per operation")
common.table(common.query("scim_latency", filters), "scim-latency", key="scim_latency")

st.subheader("Errors by scimType")
errors = common.query("scim_errors_by_type", filters)
if errors.empty:
    st.write("No error answers in this period.")
else:
    common.table(errors, "scim-errors", key="scim_errors", column_config=common.time_columns("first_seen", "last_seen"))

st.subheader("Token trouble (401/403)")
auth = common.query("scim_auth_failures", filters)
if auth.empty:
    st.write("No 401/403 answers in this period.")
else:
    st.caption("Renew the SCIM secret token in the enterprise app (Provisioning > Admin credentials) when these "
               "come from Entra's client; from another client, find who holds that credential.")
    common.table(auth, "scim-auth-failures", key="scim_auth",
                 column_config=common.time_columns("day", "first_seen", "last_seen"))

st.subheader("Correlation with Entra's log")
classes = common.query("correlation_class_counts", filters)
if classes.empty:
    st.write("Nothing correlated yet: the correlation runs after `python -m ingest scim` loads a trail.")
else:
    fig = px.bar(classes, x="rows", y="match_class", color="detail", orientation="h",
                 title="Entra events and SCIM requests by correlation class",
                 labels={"rows": "Events and requests", "match_class": "Correlation class", "detail": "Detail"},
                 color_discrete_map=palette.color_map(classes["detail"]))
    fig.update_layout(margin=dict(t=50, b=10), legend_title_text="Detail")
    charts.show(fig, "correlation_classes")
    common.table(classes, "correlation-classes", key="correlation_classes_table")

contradictions = common.query("correlation_contradictions", filters)
st.subheader(f"Contradictions ({len(contradictions)})")
if contradictions.empty:
    st.write("Entra and the SCIM server agree about every outcome in this period.")
else:
    st.caption("Entra and the SCIM server disagree about the outcome of the same change.")
    common.table(links.with_event_link(links.with_identity_link(contradictions, upn="user_name", source_id="",
                                                                fallback=None), event_id="event_id"),
                 "scim-contradictions", key="contradictions",
                 column_config=common.time_columns("event_time") | links.event_column()
                 | links.identity_column("Open this userName's timeline"))

st.subheader(f"Requests Entra never logged ({unlogged_total:,})")
if unlogged.empty:
    st.write("Every SCIM request (probes aside) has a matching Entra event.")
else:
    st.caption("Writes by another client (an HRIS sync, a script) or requests Entra did not report.")
    common.bounded_caption(len(unlogged), unlogged_total, "requests", order="first (writes first)")
    common.table(unlogged, "scim-unlogged", key="unlogged", column_config=common.time_columns("ts"),
                 full=common.full_query_csv("scim_unlogged_requests", filters))

probes = common.query("scim_probes", filters)
if not probes.empty:
    st.subheader("Probes")
    common.table(probes, "scim-probes", key="probes", column_config=common.time_columns("day"))
