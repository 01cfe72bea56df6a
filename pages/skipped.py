"""Skipped: why identities were not provisioned, who to fix and how (layout only)."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from pages import charts, common, links, palette, timebins

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

# One colour per category in both charts (pages/palette.py), legends in words; bins follow the period.
named = by_category.assign(category=by_category["skip_category"].map(lambda c: LABELS.get(c, c)))
colours = {LABELS.get(c, c): palette.skip_category(c) for c in [*LABELS, *named["skip_category"]]}
pie = px.pie(named, names="category", values="skips", title="Skips by category", hole=0.4, color="category",
             color_discrete_map=colours, labels={"category": "Category", "skips": "Skips"})
pie.update_layout(margin=dict(t=50, b=10), legend_title_text="Category")
kpis = common.query("overview_kpis", filters).iloc[0]
start, end = timebins.period(filters.since, filters.until, kpis["first_event"], kpis["last_event"])
b = timebins.choose(start, end)
per_bin = common.query("skips_by_category_over_time", filters, bucket=b.name)
per_bin["category"] = per_bin["skip_category"].map(lambda c: LABELS.get(c, c))
per_day_chart = px.bar(per_bin, x="bucket", y="skips", color="category", title=f"Skips {b.per} by category (UTC)",
                       color_discrete_map=colours,
                       labels={"bucket": b.axis_title, "skips": f"Skips {b.per}", "category": "Category"})
per_day_chart.update_layout(barmode="stack", margin=dict(t=50, b=10), legend_title_text="Category")
timebins.style_axis(per_day_chart, b, start, end, f"Skips {b.per}")
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
