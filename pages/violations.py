"""Constraint violations: duplicate userName, non-work email and other rejected values, open or
resolved, with evidence from Entra, the SCIM server or both (layout only)."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from pages import charts, columns, common, links, palette

filters = common.page_setup("pages/violations.py")

KINDS = {
    "duplicate_user_name": ("Duplicate userName", "The app already has an account with this userName "
                            "(compared case-insensitively). Rename or delete the existing account in the app, "
                            "or change the user's UPN / the userName mapping."),
    "duplicate_group_name": ("Duplicate group name", "The app already has a group with this displayName. Rename or "
                             "delete the existing group in the app, or change the group's displayName in Entra ID / "
                             "its mapping (or the matching attribute, if the existing group should be taken over)."),
    "non_work_email": ("Non-work email", "The app accepts only the organisation's email domains. Set the user's "
                       "mail attribute to a work address."),
    "other_rejected_value": ("Other rejected value", "Read the SCIM detail on the Failures page and fix the "
                             "attribute in Entra ID or its mapping."),
}

TABLE_ROWS = 500  # per kind; the CSV download holds every row

st.title("Constraint violations")

violations = common.query("violations", filters)
if violations.empty:
    common.empty_state("No constraint violations in this period. Widen the time range in the sidebar or clear "
                       "the app/job filter.")
    st.stop()

apps = common.query("service_principals")
names = dict(zip(apps["service_principal_id"], apps["service_principal_name"]))
violations.insert(2, "app", violations["service_principal_id"].map(names))

c = st.columns(len(KINDS) + 1)
for col, (kind, (label, _)) in zip(c, KINDS.items()):
    rows = violations[violations["kind"] == kind]
    col.metric(label, f"{len(rows):,}", help=f"{int((rows['state'] == 'open').sum())} open")
c[-1].metric("Open", f"{int((violations['state'] == 'open').sum()):,}")

summary = common.query("violations_summary", filters)
summary = summary.assign(kind=summary["kind"].map(lambda k: KINDS.get(k, (k,))[0]))  # labels in words
fig = px.bar(summary, x="kind", y="violations", color="state", title="Violations by kind and state",
             color_discrete_map=palette.VIOLATION_STATE,
             labels={"kind": "Kind of violation", "violations": "Violations", "state": "State"})
fig.update_layout(margin=dict(t=50, b=10), legend_title_text="State", yaxis_tickformat=",d")
charts.show(fig, "violations_by_kind")

state = st.segmented_control("State", ["open", "resolved"], selection_mode="multi", default=["open", "resolved"],
                             key="violation_state")
# newest first; each table shows at most `limit` rows (a big tenant has tens of thousands), its download all of them
shown = violations[violations["state"].isin(state or [])].sort_values("last_seen", ascending=False, kind="stable")
limit = min(TABLE_ROWS, common.row_cap() or TABLE_ROWS)
allowed = common.query("allowed_email_domains", filters)
for kind, (label, fix) in KINDS.items():
    rows = shown[shown["kind"] == kind].drop(columns=["kind"])
    if rows.empty:
        continue
    st.subheader(f"{label} ({len(rows):,})")
    st.caption(f"*What to do:* {fix}")
    if kind == "non_work_email" and not allowed.empty:
        st.caption("Allowed (work) domains, from the domains of successful users: "
                   + ", ".join(common.md_text(d) for d in allowed["domain"]))
    common.bounded_caption(min(limit, len(rows)), len(rows), "violations", order="most recently seen")
    common.table(links.with_identity_link(rows.head(limit), upn="user_name", fallback=None), f"violations-{kind}",
                 key=f"violations_{kind}",
                 column_order=[links.IDENTITY_COLUMN, "state", "occurrences", "email_domain", "evidence", "last_seen",
                               "first_seen", "resolved_at", "source_name", "source_type", "target_type", "user_name",
                               "source_id", "service_principal_id"],
                 column_config=common.time_columns("first_seen", "last_seen", "resolved_at")
                 | links.identity_column("Open this identity's timeline (its userName, or object id)") | {
                     "state": st.column_config.TextColumn("State", width="small"),
                     "occurrences": st.column_config.NumberColumn("Failures", width="small",
                                                                  help="Failed events of this kind"),
                     "email_domain": "Email domain", "evidence": st.column_config.TextColumn(
                         "Evidence", width="small", help="entra: Entra's log; both: the SCIM server's reply too"),
                     "last_seen": st.column_config.DatetimeColumn("Last seen (UTC)", width=columns.WIDTHS["time"],
                                                                  **common.TIME_COLUMN),
                     "first_seen": st.column_config.DatetimeColumn("First seen (UTC)", width=columns.WIDTHS["time"],
                                                                   **common.TIME_COLUMN),
                     "resolved_at": st.column_config.DatetimeColumn("Resolved (UTC)", **common.TIME_COLUMN),
                     "source_name": "Display name", "source_type": "Identity type", "target_type": "Target type",
                     "user_name": "userName", "source_id": "Object id", "service_principal_id": "App id"},
                 full=(lambda rows=rows: common.csv_bytes(rows)) if len(rows) > limit else None)

duplicates = shown[shown["kind"] == "duplicate_user_name"].head(limit)
if not duplicates.empty:
    st.subheader("The SCIM server's side of a duplicate")
    if not common.has_rows("scim_requests"):
        st.caption("Load the SCIM audit trail (`python -m ingest scim PATH`) to see the existing account in the app.")
    else:
        labels = dict(zip(duplicates["user_name"], duplicates["user_name"] + " (" + duplicates["state"] + ")"))
        user_name = st.selectbox("userName", list(labels), format_func=labels.get, key="violation_user",
                                 help="The duplicates in the table above; the Identity page finds any other")
        st.caption("Every SCIM request for this userName, compared case-insensitively: the rejected creates (409) "
                   "and, where the trail shows it, the existing account (its resource id) they collide with.")
        requests = common.query("scim_identity_timeline", filters, identity=user_name)
        if requests.empty:
            st.write("The SCIM trail has no request for this userName in this period.")
        else:
            common.table(links.with_event_link(requests, event_id="event_id"), "violation-scim-requests",
                         key="violation_scim",
                         column_order=["ts", "method", "status", "resource_id", "error_detail", "scim_type",
                                       links.EVENT_COLUMN, "operation", "user_name", "external_id", "match_class",
                                       "detail", "path", "request_id", "event_id"],
                         column_config=links.event_column() | {
                             "ts": st.column_config.DatetimeColumn("Time (UTC)", width=columns.WIDTHS["time"],
                                                                   format="YYYY-MM-DD HH:mm:ss"),
                             "method": st.column_config.TextColumn("Method", width="small"),
                             "status": st.column_config.NumberColumn("HTTP", width="small", format="%d"),
                             "resource_id": st.column_config.TextColumn(
                                 "Account in the app", width="medium",
                                 help="The SCIM resource id: on a 409, the existing account the create collides with "
                                      "where the trail shows it"),
                             "error_detail": st.column_config.TextColumn("SCIM detail", width="medium"),
                             "scim_type": st.column_config.TextColumn("scimType", width="small"),
                             "operation": "Operation", "user_name": "userName", "external_id": "externalId",
                             "match_class": "Match", "detail": "Match detail", "path": "Path",
                             "request_id": "Request id", "event_id": "Event id"})
