"""The Overview's summary tables as HTML (pages/html_table.py): text from the database stays text, and values
read as on the interactive tables (UTC minutes, thousands separators, missing values empty)."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd

from pages.html_table import cell_text, table_html
from tests.conftest import tables_in_html

HOSTILE = '<img src=x onerror="alert(1)"></td></tr></table><script>alert(2)</script>&amp;'


def _parsed(df: pd.DataFrame) -> list[dict[str, str]]:
    (table,) = tables_in_html(table_html(df))
    return table


def test_text_from_the_database_is_escaped_and_reads_back_unchanged():
    df = pd.DataFrame({"error_code": [HOSTILE, "ok"], "failures": [3, 4]})
    html = table_html(df)
    assert "<img" not in html and "<script>" not in html and "</td></tr></table><script>" not in html
    assert html.count("<table") == 1 and html.count("</table>") == 1
    assert _parsed(df) == [{"error code": HOSTILE, "failures": "3"}, {"error code": "ok", "failures": "4"}]


def test_values_read_as_on_the_interactive_tables():
    df = pd.DataFrame({
        "first_seen": pd.to_datetime(["2026-10-26 09:33:17.8", None], utc=True),
        "failures": np.array([53802, 7], dtype="int64"),
        "http_status": pd.array([401, None], dtype="Int32"),
        "share": [0.5, float("nan")],
        "note": ["two\nlines", None],
    })
    assert _parsed(df) == [
        {"first seen": "2026-10-26 09:33 UTC", "failures": "53,802", "http status": "401", "share": "0.50",
         "note": "two lines"},
        {"first seen": "", "failures": "7", "http status": "", "share": "", "note": ""},
    ]
    # numbers are right-aligned, text is not
    assert '<th class=num>failures</th>' in table_html(df) and "<th>note</th>" in table_html(df)


def test_a_naive_time_is_read_as_utc_and_an_offset_is_converted():
    assert cell_text(datetime(2026, 1, 2, 3, 4, 59)) == "2026-01-02 03:04 UTC"
    aware = pd.Timestamp("2026-01-02 05:04", tz="Europe/Berlin")
    assert cell_text(aware) == "2026-01-02 04:04 UTC"
    assert cell_text(datetime(2026, 1, 2, tzinfo=timezone.utc)) == "2026-01-02 00:00 UTC"


def test_an_empty_frame_is_a_header_only():
    assert _parsed(pd.DataFrame({"kind": pd.Series([], dtype=str)})) == []
