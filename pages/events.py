"""Events: every provisioning event under the sidebar's filters and event filters (status, action, error code,
skip category, identity, cycle, change, job), newest first, with the true total and a CSV of the whole filtered
set through the export code (layout only)."""

from __future__ import annotations

import streamlit as st

from pages import common
from queries.events import PAGE_ROWS as LIMIT

filters = common.page_setup("pages/events.py")

st.title("Events")
st.caption("Every provisioning event in the period, newest first. Narrow it with the sidebar: time range, apps, "
           "job, identity types, and under **Event filters** status, action, error code, skip category, identity, "
           "cycle id and change id. The URL keeps every filter: share it to share this view.")

total = int(common.query("events_count", filters).iloc[0]["events"])
if not total:
    common.empty_state("No event matches these filters. Widen the time range or clear a filter in the sidebar; "
                       "if you expected events, check the freshness panel and run the ingest.")
    st.stop()

rows = common.query("events_recent", filters, limit=LIMIT)
st.metric("Events matching", f"{total:,}", help="Every event the filters keep: the CSV download holds them all")
common.bounded_caption(len(rows), total, "events")
common.table(
    rows, "events", key="events", height=560 if len(rows) > 14 else "auto",
    column_config=common.time_columns("activity_time") | {
        "event": st.column_config.LinkColumn("event", display_text="details", width="small",
                                             help="The event's details: steps, modified properties, raw JSON"),
        "source_upn": st.column_config.TextColumn("source UPN"),
        "source_type": st.column_config.TextColumn("identity type"),
        "user_name": st.column_config.TextColumn("target userName"),
        "error_code": st.column_config.TextColumn("error code", width="medium"),
        "skip_category": st.column_config.TextColumn("skip category"),
        "service_principal_name": st.column_config.TextColumn("app"),
    },
    full=common.full_dataset_csv("events", filters))
