"""Skipped: why identities were not provisioned, who to fix and how (layout only)."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from pages import charts, common, links

filters = common.page_setup("pages/skipped.py")

# Each skip category's label and what to do: the skip-reason table (ingest/skip_reasons.py), through a query.
advice = common.query("skip_categories")
FIXES = dict(zip(advice["skip_category"], advice["what_to_do"]))
LABELS = dict(zip(advice["skip_category"], advice["label"]))

st.title("Skipped")

by_category = common.query("skips_by_category", filters)
if by_category.empty:
    common.empty_state("No skipped events in this period. Widen the time range in the sidebar or clear the "
                       "app/job filter; if you expected skips, run the ingest.")
    st.stop()

totals = by_category.groupby("skip_category", sort=False)["skips"].sum()
shown = [k for k in FIXES if totals.get(k, 0)] or ["other"]  # the categories this period has
for first in range(0, len(shown), 5):  # rows of five: nine categories in one row cut their labels short
    for col, category in zip(st.columns(5), shown[first:first + 5]):
        col.metric(LABELS[category], f"{int(totals.get(category, 0)):,}")

pie = px.pie(by_category, names="skip_category", values="skips", title="Skips by category", hole=0.4)
pie.update_layout(margin=dict(t=50, b=10))
per_day = common.query("skips_by_category_day", filters)
per_day_chart = px.bar(per_day, x="day", y="skips", color="skip_category", title="Skips per day by category (UTC)")
per_day_chart.update_layout(barmode="stack", margin=dict(t=50, b=10), legend_title_text="")
charts.show_row([(pie, "skips_pie"), (per_day_chart, "skips_by_day")], widths=[1, 2])
common.table(by_category, "skips-by-category", key="skips_by_category")

st.subheader("Identities to fix")
identities = common.query("skip_identities_top", filters, limit=500)
categories = [c for c in FIXES if c in set(identities["skip_category"])]
default = ["default_access"] if "default_access" in categories else categories[:1]
chosen = st.multiselect("Reasons", categories, default=default, key="skip_categories",
                        format_func=lambda c: LABELS.get(c, c))
for category in chosen:
    rows = identities[identities["skip_category"] == category]
    total = int(rows["category_identities"].iloc[0])
    st.markdown(f"**{LABELS[category]}**: {total:,} identit{'y' if total == 1 else 'ies'}"
                f". *What to do:* {common.md_text(FIXES[category])}")
    common.bounded_caption(len(rows), total, "identities", order="most-skipped")
    common.table(links.with_identity_link(rows.drop(columns=["skip_category", "category_identities"])),
                 f"skipped-{category}", key=f"skipped_{category}",
                 column_config=common.time_columns("first_seen", "last_seen") | links.identity_column(),
                 full=common.full_query_csv("skip_identities", filters, where={"skip_category": category},
                                            drop=("skip_category",)))
