"""Alerts: what is wrong now, and every alert fired, resolved and notified (layout only; issue 24)."""

from __future__ import annotations

import streamlit as st

from pages import alert_cards, columns, common

filters = common.page_setup("pages/alerts.py")

st.title("Alerts")
if common.on_lake():
    st.info("Alerts are not in the lake: the alert rules run on each tenant's own store after its ingest, and their "
            "state and notifications stay with that store (README, \"Reading a lake from the dashboard\"). Open the "
            "dashboard on the tenant's store (`PROVLENS_DB`) to see its alerts.", icon=":material/cloud_off:")
    st.stop()
st.caption("The alert rules run after every ingest run (and with `python -m ingest alerts`). A firing alert is "
           "sent once to each target that takes it, again after the re-notify interval while it stays active, and "
           "its resolution once. Alerts are the whole tenant's: the sidebar's filters do not apply here.")

counts = common.query("alert_counts").iloc[0]
c = st.columns(4)
c[0].metric("Active alerts", f"{int(counts['active']):,}")
c[1].metric("Critical", f"{int(counts['critical']):,}")
c[2].metric("Warning", f"{int(counts['warning']):,}")
c[3].metric("Notifications not delivered yet", f"{int(counts['undelivered']):,}",
            help="Recorded and not yet accepted by their target; the next run tries again")

st.subheader("Active now")
active = common.query("alerts_active")
if active.empty:
    st.success("No active alert.", icon=":material/check_circle:")
else:
    alert_cards.show(active)

LINK = st.column_config.LinkColumn("Evidence", display_text="open")
_TIMES = ("fired_at", "resolved_at", "first_seen", "last_seen", "last_notified_at", "last_sent_at", "recorded_at",
          "sent_at", "last_attempt_at")

st.subheader("History")
history = common.query("alert_history", limit=500)
if history.empty:
    st.write("No alert has fired yet.")
else:
    common.table(history, "alert-history", column_config={**columns.labelled(history.columns, _TIMES), "url": LINK})
    st.caption(f"{int(counts['episodes']):,} alert episodes in all; the newest 500 shown.")

st.subheader("Notifications")
deliveries = common.query("alert_deliveries", limit=500)
if deliveries.empty:
    st.write("No notification recorded: configure `[[alerts.targets]]` in provlens.toml (README, \"Get alerted\").")
else:
    common.table(deliveries, "alert-notifications",
                 column_config={**columns.labelled(deliveries.columns, _TIMES), "url": LINK})
