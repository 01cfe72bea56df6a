"""Event: one provisioning event (``/event?id=<Graph event id>``) as Entra's details pane shows it: what happened,
the error and what to do, source and target identity, the steps in order, the modified properties, the ids with
links to their views, the SCIM requests correlated with it and the raw JSON (layout only)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pages import common, links

filters = common.page_setup("pages/event.py")

st.title("Event")
common.url_value("id", "event_id")
with st.expander("Event id", expanded=not st.session_state.get("event_id")):
    event_id = st.text_input("Event id", key="event_id", placeholder="The Graph id of a provisioning event",
                             help="Every event link of the other pages opens here; the id is Entra's "
                                  "provisioningObjectSummary id", label_visibility="collapsed").strip()
common.keep_in_url("id", event_id)
if not event_id:
    common.empty_state("Open an event from a table (Failures, Identity, Sync cycles, ...) or paste an event id.")
    st.stop()

found = common.query("event_detail", event_id=event_id)
if found.empty:
    st.warning(f"There is no event with the id \"{common.md_text(event_id)}\" in this database. Check the id, or "
               "load the period it is from (`python -m ingest graph --since ...` or `python -m ingest files ...`).",
               icon=":material/search_off:")
    st.stop()
e = found.iloc[0]


def _text(value) -> str:
    return "" if value is None or (not isinstance(value, str) and bool(pd.isna(value))) else str(value)


who = _text(e.source_upn) or _text(e.source_name) or _text(e.source_id) or "(no source identity)"
status = _text(e.status) or "unknown"
mark = {"success": ":green", "failure": ":red", "skipped": ":gray", "warning": ":orange"}.get(status, ":gray")
st.markdown(f"### {mark}[{common.md_text(status)}] · {common.md_text(_text(e.action) or 'no action')} · "
            f"{common.md_text(who)}")
st.caption(f"{common.fmt_time(e.activity_time)} · {common.md_text(_text(e.service_principal_name) or 'unnamed app')}"
           " · shown whatever the sidebar's time range and filters")

if status in ("failure", "warning", "skipped") or _text(e.recommended_action):
    with st.container(border=True):
        if _text(e.recommended_action):
            st.markdown(f"**What to do:** {common.md_text(e.recommended_action)}")
            if _text(e.entra_recommended_action):
                st.caption("Microsoft's recommended action, from the event.")
        if status == "skipped":
            st.markdown(f"**Skip category:** {common.md_text(_text(e.skip_category) or 'other')}"
                        + (f" · **reason:** `{_text(e.skip_reason)}`" if _text(e.skip_reason) else ""))
            if _text(e.skip_detail):
                st.markdown(f"**Entra says:** {common.md_text(e.skip_detail)}")
        if _text(e.error_code) and status != "skipped":
            st.markdown(f"**Error code:** {common.md_text(e.error_code)} · **category:** "
                        f"{common.md_text(_text(e.error_category) or '-')}")
            c = st.columns(3)
            c[0].markdown(f"**SCIM status**  \n{common.md_text(_text(e.http_status) or '-')}")
            c[1].markdown(f"**scimType**  \n{common.md_text(_text(e.scim_type) or '-')}")
            c[2].markdown(f"**Retries / next retry**  \n{common.md_text(_text(e.retry_count) or '-')} / "
                          f"{common.fmt_time(e.next_retry_at) if _text(e.next_retry_at) else '-'}")
            if _text(e.scim_detail):
                st.markdown(f"**SCIM detail:** {common.md_text(e.scim_detail)}")
            if _text(e.error_reason):
                st.markdown(f"**Reason:** {common.md_text(e.error_reason)}")
            if _text(e.error_details):
                st.markdown(f"**Additional details:** {common.md_text(e.error_details)}")

left, right = st.columns(2)
with left, st.container(border=True):
    st.markdown("**Source identity**")
    st.markdown(f"{common.md_text(_text(e.source_name) or '(no display name)')} · type "
                f"{common.md_text(_text(e.source_type) or '-')} · in {common.md_text(_text(e.source_system) or '-')}")
    st.markdown(f"UPN: {common.md_text(_text(e.source_upn) or '-')}  \nObject id: `{_text(e.source_id) or '-'}`")
    url = links.identity_url(_text(e.source_upn) or None, _text(e.source_id) or None)
    if url:
        st.markdown(f"[Timeline of this identity]({url})")
    admin = links.admin_center_urls(_text(e.tenant_id) or None, _text(e.service_principal_id) or None,
                                    _text(e.app_id) or None)
    if admin:
        st.markdown("Fix it in the Entra admin center: " + " · ".join(
            f"[{label}]({href})" for label, href in admin.items()))
with right, st.container(border=True):
    st.markdown("**Target identity**")
    st.markdown(f"{common.md_text(_text(e.target_name) or '(no display name)')} · type "
                f"{common.md_text(_text(e.target_type) or '-')} · in {common.md_text(_text(e.target_system) or '-')}")
    st.markdown(f"userName: {common.md_text(_text(e.user_name) or '-')}  \nTarget id: `{_text(e.target_id) or '-'}`")
    st.markdown(f"Initiated by: {common.md_text(_text(e.initiated_by) or '-')} "
                f"({common.md_text(_text(e.initiator_type) or '-')}) · duration "
                f"{common.md_text(_text(e.duration_ms) or '-')} ms")

st.subheader("Steps")
steps = common.query("event_steps", event_id=event_id)
if steps.empty:
    st.write("The event holds no provisioning steps.")
for step in steps.itertuples():
    icon = {"success": ":material/check_circle:", "failure": ":material/error:", "skipped": ":material/block:",
            "warning": ":material/warning:"}.get(_text(step.status).lower(), ":material/radio_button_unchecked:")
    with st.container(border=True):
        st.markdown(f"{icon} **{step.step}. {common.md_text(_text(step.step_type) or 'step')}** · "
                    f"{common.md_text(_text(step.status) or 'no status')} · `{_text(step.name)}`")
        st.markdown(common.md_text(_text(step.description)))
        if _text(step.details) and _text(step.details) not in ("{}", "null"):
            with st.expander("Details"):
                st.code(_text(step.details), language="json", wrap_lines=True)

st.subheader("Modified properties")
mods = common.query("event_modified_properties", event_id=event_id)
if mods.empty:
    st.write("The event lists no modified properties.")
else:
    st.dataframe(mods.drop(columns=["position"]), hide_index=True, width="stretch", column_config={
        "property": st.column_config.TextColumn("Property", width="medium"),
        "old_value": st.column_config.TextColumn("Old value", help="Before the change (empty: not set)"),
        "new_value": st.column_config.TextColumn("New value", help="What Entra sent")})

st.subheader("Ids")
keep = links.filter_params()
id_rows = [("Cycle", _text(e.cycle_id), links.cycle_url(_text(e.cycle_id) or None, keep)),
           ("Job", _text(e.job_id), links.job_url(_text(e.job_id) or None, keep)),
           ("Change", _text(e.change_id), links.change_url(_text(e.change_id) or None, keep)),
           ("Event", event_id, None), ("Tenant", _text(e.tenant_id), None),
           ("Service principal", _text(e.service_principal_id), None),
           ("Application (client) id", _text(e.app_id), None)]
for label, value, href in id_rows:
    what = {"Cycle": "the cycle's events", "Job": "the job's cycles", "Change": "events of this change"}.get(label)
    link = f" · [{what}]({href})" if href and value else ""
    st.markdown(f"**{label}:** `{value or '-'}`{link}")

st.subheader("SCIM requests correlated with it")
if not common.has_rows("scim_requests"):
    st.caption("SCIM audit trail not loaded: load it with `python -m ingest scim PATH` to see the app's side.")
else:
    scim = common.query("event_scim_requests", event_id=event_id)
    if scim.empty:
        st.write("No SCIM request is correlated with this event.")
    else:
        st.dataframe(scim, hide_index=True, width="stretch", column_config={
            "ts": st.column_config.DatetimeColumn("Time (UTC)", format="YYYY-MM-DD HH:mm:ss"),
            "method": st.column_config.TextColumn("Method", width="small"),
            "path": st.column_config.TextColumn("Path", width="medium"),
            "status": st.column_config.NumberColumn("HTTP status", width="small", format="%d"),
            "operation": "Operation", "scim_type": "scimType",
            "error_detail": st.column_config.TextColumn("SCIM detail", width="large"),
            "user_name": "userName", "match_class": st.column_config.TextColumn(
                "Match", help="How the correlation matched the request to the event"),
            "detail": "Match detail", "delta_s": st.column_config.NumberColumn(
                "Seconds from event", format="%.1f", help="Request time minus event time"),
            "request_id": st.column_config.TextColumn("Request id", width="small")})

with st.expander("Raw JSON (as stored, in Graph's spelling)"):
    st.code(_text(e.raw), language="json", wrap_lines=True)
