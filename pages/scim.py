"""SCIM audit: what the SCIM server saw, and how it lines up with Entra's log (layout only)."""

from __future__ import annotations

import streamlit as st

from pages import common

filters = st.session_state.get("filters")

st.title("SCIM audit")
st.caption("The SCIM server's own request log: requests by operation and status, latency, errors by scimType, "
           "token trouble (401/403), probes, and how each request matches Entra's provisioning log.")

if not common.has_rows("scim_requests"):
    common.empty_state("No SCIM audit trail in this database. Load the server's audit log with "
                       "`python -m ingest scim PATH` (JSONL or CSV; see the README), then reload this page.")
    st.stop()

common.empty_state("The SCIM audit views are not available in this version of provlens yet.")
