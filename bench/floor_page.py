"""B6's floor: the least a Streamlit page with one provlens chart costs on this machine.

``PROVLENS_APP=bench/floor_page.py streamlit run serve.py`` serves it, warmed up like the dashboard.

One bar chart of events per day by status, drawn like the Overview's (``pages.charts``: plotly.js in an
iframe), from a constant frame: no database, no sidebar, no other element. The Overview's first visit is
measured against this page's, alternating in the same run, so what the Overview adds above Streamlit's own
start-up reads as a ratio on any machine.
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from pages import charts

st.set_page_config(page_title="provlens floor", layout="wide")
st.title("Floor")
days = pd.date_range("2026-09-01", periods=62, freq="D", tz="UTC")
frame = pd.DataFrame({"day": days.repeat(3), "status": ["success", "failure", "skipped"] * len(days),
                      "events": range(3 * len(days))})
charts.show(px.bar(frame, x="day", y="events", color="status"), "floor")
