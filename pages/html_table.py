"""Small read-only tables as escaped HTML for ``st.html`` (the Overview's summaries).

``st.dataframe`` brings Streamlit's DataFrame element: ~1.5 MB of JavaScript (the data grid and Arrow) that
a first visit loads and evaluates before the page shows its elements, which Streamlit draws together once
their code is in (~0.2 s of the Overview's first visit, B6 in bench/BENCHMARKS.md). A ten-row summary needs
no sorting or scrolling: the pages it summarises have the interactive tables.

Every header and cell is escaped (``html.escape``) and ``st.html`` sanitises the result again (DOMPurify),
so text from the database (error codes, app names) is always shown as text.
"""

from __future__ import annotations

import html
import math
import numbers
from datetime import datetime, timezone

import numpy as np
import pandas as pd

CLASS = "provlens-table"
STYLE = f"""<style>
table.{CLASS} {{ border-collapse: collapse; width: 100%; font-size: 0.875rem; }}
table.{CLASS} th {{ text-align: left; font-weight: 600; color: rgba(49, 51, 63, 0.7); }}
table.{CLASS} th, table.{CLASS} td {{ padding: 0.25rem 0.75rem 0.25rem 0; border-bottom: 1px solid #e6e9ef;
  vertical-align: top; overflow-wrap: anywhere; }}
table.{CLASS} td.num, table.{CLASS} th.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
</style>"""


def cell_text(value) -> str:
    """How a value reads in the table: times as UTC minutes, whole numbers with thousands separators,
    missing values empty, everything else as its text on one line."""
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, datetime):
        ts = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return ts.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        return "" if math.isnan(value) else f"{float(value):,.2f}"
    return " ".join(str(value).split())


def _numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def table_html(df: pd.DataFrame) -> str:
    """The frame as one HTML table: a header row (column names with spaces for underscores), then one row per
    record in order; numbers right-aligned."""
    numeric = [_numeric(df[c]) for c in df.columns]
    head = "".join(f'<th{" class=num" if num else ""}>{html.escape(str(c).replace("_", " "))}</th>'
                   for c, num in zip(df.columns, numeric))
    rows = []
    for record in df.itertuples(index=False, name=None):
        cells = "".join(f'<td{" class=num" if num else ""}>{html.escape(cell_text(v))}</td>'
                        for v, num in zip(record, numeric))
        rows.append(f"<tr>{cells}</tr>")
    return f'{STYLE}<table class="{CLASS}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
