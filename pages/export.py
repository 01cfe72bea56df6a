"""Export: pick a dataset and download it as CSV or Parquet with the sidebar's filters, through the
same code as ``python -m queries export`` (layout only)."""

from __future__ import annotations

import streamlit as st

from pages import common
from queries.catalog import QUERIES
from queries.datasets import DATASETS

filters = common.page_setup("pages/export.py")

st.title("Export")
st.caption("Audit exports of the period, apps and job chosen in the sidebar: UTF-8 CSV with formula-like cells "
           "neutralised, or Parquet with exact values. The same files as `python -m queries export NAME`.")

common.url_value("dataset", "export_dataset", "events")
if st.session_state["export_dataset"] not in DATASETS:
    common.url_notice("dataset", st.session_state["export_dataset"], "no such dataset; showing events.")
    common.show_url_notices()
    st.session_state["export_dataset"] = "events"
dataset = st.selectbox("Dataset", list(DATASETS), key="export_dataset",
                       format_func=lambda d: f"{d}: {QUERIES[d].description}")
common.keep_in_url("dataset", dataset)
fmt = st.radio("Format", ["csv", "parquet"], horizontal=True, key="export_format")
st.caption("Columns: " + ", ".join(f"`{c}`" for c in DATASETS[dataset].columns))

try:
    rows = common.export_rows(dataset, filters)
except Exception as exc:  # a clear message on the page, never a stack trace
    st.error(f"Could not export {dataset}: {common.md_text(exc)}")
    st.stop()

st.metric("Rows", f"{rows:,}")
if not rows:
    common.empty_state("Nothing to export for these filters: widen the time range in the sidebar or clear the "
                       "app/job filter. The file will hold only the header.")
# The file is built when the button is clicked (a big export is never held in the server's memory).
st.download_button(f"Download {dataset}.{fmt}", data=common.export_builder(dataset, filters, fmt),
                   file_name=f"provlens-{dataset}.{fmt}",
                   mime="text/csv" if fmt == "csv" else "application/vnd.apache.parquet", key="export_download",
                   on_click="ignore", icon=":material/download:", type="primary")
st.download_button("Download its manifest (JSON)", data=common.export_builder(dataset, filters, fmt, "manifest"),
                   file_name=f"provlens-{dataset}.{fmt}.manifest.json", mime="application/json",
                   key="export_manifest", on_click="ignore",
                   help="Row count, SHA-256 of the file, filters, data freshness; built with the file, so the "
                        "SHA-256 matches a download of the same data")
