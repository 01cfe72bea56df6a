"""Preflight: what the next cycle will fail, skip or collide on, found before Entra runs it; each finding's fix and
how the predictions fared against what Entra logged since (layout only; queries/preflight.py)."""

from __future__ import annotations

import streamlit as st

from ingest.preflight.findings import KINDS
from pages import common

filters = common.page_setup("pages/preflight.py")

st.title("Preflight")
st.caption("Findings of `python -m ingest preflight`: assignments, mappings and the app's accounts checked before "
           "a cycle. A finding is *confirmed* when Entra logged the predicted failure or skip, *wrong* when it did "
           "otherwise, *not yet* while no cycle touched the identity.")

runs = common.query("preflight_runs", filters)
if runs.empty:
    common.empty_state("No preflight run in this period. Run `python -m ingest preflight --service-principal-id ID "
                       "[--scim-url URL]` before turning provisioning on (README: \"Before you turn provisioning "
                       "on\"), or widen the time range.")
    st.stop()

labels = {int(r.run_id): f"Run {int(r.run_id)}: {r.started_at:%Y-%m-%d %H:%M} UTC, app {r.service_principal_id}, "
                         f"{int(r.findings)} findings" for r in runs.itertuples()}
run_id = st.selectbox("Preflight run", list(labels), format_func=labels.get, key="preflight_run")

precision = common.query("preflight_precision", filters, run=run_id)
overall = precision[precision["kind"].isna()].iloc[0]
cols = st.columns(5)
cols[0].metric("Findings", f"{int(overall['findings']):,}")
cols[1].metric("Confirmed", f"{int(overall['confirmed']):,}")
cols[2].metric("Not yet", f"{int(overall['not_yet']):,}")
cols[3].metric("Wrong", f"{int(overall['wrong']):,}")
cols[4].metric("Precision", "n/a" if overall["precision"] is None or overall["precision"] != overall["precision"]
               else f"{overall['precision']:.0%}",
               help="confirmed / (confirmed + wrong): findings no cycle has touched yet count neither way")
common.table(precision.assign(kind=precision["kind"].fillna("all")), "preflight-precision", key="preflight_precision")

findings = common.query("preflight_page", filters, run=run_id)
if findings.empty:
    st.success("This run found nothing to fix.")
    st.stop()
for kind, (label, outcome, fix) in KINDS.items():
    rows = findings[findings["kind"] == kind]
    if rows.empty:
        continue
    st.subheader(f"{label} ({len(rows):,})")
    st.markdown(f"*Entra will log:* {common.md_text(outcome)}  \n*Fix:* {common.md_text(fix)}")
    common.table(rows[["status", "user_principal_name", "user_name", "detail", "identity_link", "source_id"]],
                 f"preflight-{kind}", key=f"preflight_{kind}",
                 column_config={"identity_link": st.column_config.LinkColumn("identity", display_text="open")})
