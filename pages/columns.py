"""How the wide tables read (issue 23 item 6): column widths that fit the important columns at 1440 pixels, human
headers with help text, long error codes shortened (the full code one click or one column away), and a picker for
the technical columns."""

from __future__ import annotations

import pandas as pd
import streamlit as st

# Column widths (pixels) that put identity, what to do, error, time and the links side by side in the 980 pixels a
# table gets at 1440 pixels wide with the sidebar open (issue 23 item 6).
WIDTHS = {"identity": 210, "action": 330, "code": 165, "time": 125, "link": 65}


def display_only(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """Mark ``column`` as shown only (a link, a shortened code): the table's CSV download leaves it out
    (pages/common.py)."""
    df.attrs["display_only"] = [*df.attrs.get("display_only", ()), column]
    return df


# Entra's SCIM error codes all start with this 38-character word: shown as "SCIM", the rest is what went wrong.
SCIM_PREFIX = "SystemForCrossDomainIdentityManagement"


def short_code(code) -> str | None:
    """An error code short enough for a table column ("SCIM·BadRequest"); the full code is in the picker's
    "Error code (full)" column and the CSV."""
    if not isinstance(code, str):
        return None
    return "SCIM·" + code[len(SCIM_PREFIX):] if code.startswith(SCIM_PREFIX) and len(code) > len(SCIM_PREFIX) else code


def with_short_code(df: pd.DataFrame, column: str = "error_code") -> pd.DataFrame:
    out = df.copy()
    out["error_short"] = out[column].map(short_code)
    return display_only(out, "error_short")


def short_code_column(label: str = "Error code") -> dict:
    return {"error_short": st.column_config.TextColumn(
        label, width=WIDTHS["code"],
        help=f"Entra's errorCode, shortened: SCIM· stands for {SCIM_PREFIX} (click a cell for all of it; the full "
             "code is under More columns and in the CSV)")}


def more_columns(key: str, technical: list[str], labels: dict[str, str] | None = None) -> list[str]:
    """A column picker beside a wide table: the technical columns a person adds to the important ones."""
    labels = labels or {}
    with st.popover("More columns", icon=":material/view_column:"):
        return st.multiselect("Show also", technical, key=f"cols_{key}", format_func=lambda c: labels.get(c, c),
                              placeholder="Technical columns (ids, raw codes, ...)")


# Human headers for the Sync cycles page's tables (issue 23 item 6: no raw column names).
CYCLE_LABELS = {
    "started_at": ("Started (UTC)", None), "ended_at": ("Ended (UTC)", None), "app": ("App", None),
    "kind": ("Kind", "initial: the job's first cycle or a full import; incremental: changes only"),
    "events": ("Events", None), "success": ("Succeeded", None), "failure": ("Failed", None),
    "skipped": ("Skipped", None), "warning": ("Warnings", None), "created": ("Creates", None),
    "updated": ("Updates", None), "disabled": ("Disables", None), "deleted": ("Deletes", None),
    "other": ("Other actions", None), "duration_s": ("Duration (s)", "First to last event of the cycle"),
    "gap_before_min": ("Gap (min)", "Minutes since the job's previous logged cycle began (40 = on schedule)"),
    "job_id": ("Job id", None), "cycle_id": ("Cycle id", None), "service_principal_id": ("App id", None),
    "service_principal_name": ("App", None), "expected_at": ("Expected (UTC)", None),
    "previous_began": ("Previous cycle (UTC)", None), "next_began": ("Next cycle (UTC)", None),
    "gap_minutes": ("Gap (min)", None), "cycles_missed": ("Cycles missed", None), "began": ("Began (UTC)", None),
    "ended": ("Ended (UTC)", None), "reason": ("Reason", None), "last_next_attempt": ("Next attempt (UTC)", None),
    "snapshots": ("Snapshots", "Job status snapshots taken while quarantined"), "source": ("From", None),
    "activity_time": ("Time (UTC)", None), "activity": ("Change", None), "initiated_by_type": ("By (type)", None),
    "initiated_by_name": ("By", None), "result": ("Result", None), "id": ("Audit id", None),
}


def labelled(columns, times: tuple[str, ...] = ()) -> dict:
    """``column_config`` with :data:`CYCLE_LABELS`' headers and help for the given columns (times as UTC minutes)."""
    out = {}
    for c in columns:
        label, help_text = CYCLE_LABELS.get(c, (c.replace("_", " ").capitalize(), None))
        out[c] = (st.column_config.DatetimeColumn(label, help=help_text, format="YYYY-MM-DD HH:mm") if c in times
                  else st.column_config.Column(label, help=help_text))
    return out
