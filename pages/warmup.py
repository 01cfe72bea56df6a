"""The dashboard server's warm-up (serve.py runs it before the server takes connections): the imports, a
throwaway chart and the Overview's queries, so the first visit after a start does not pay for them."""

from __future__ import annotations

import os
import time

# What the Overview and the sidebar read on a first visit (app.py, pages/common.py, pages/overview.py).
WARM_QUERIES = ("meta", "service_principals", "jobs", "freshness", "overview_kpis", "violations_summary",
                "events_by_status_over_time", "success_rate_over_time", "job_status", "last_cycle",
                "top_error_codes")
WARM_LOCK_TIMEOUT_S = 2.0


def _first_element_check() -> None:
    """Streamlit checks once per process, on the first element any script draws, whether it runs in a Python
    REPL: ``inspect.stack()``, which resolves the path of every loaded module (~1,600 here). That took
    0.1-0.2 s of the first visit's script run after a start (the Overview's first selectbox). Run the check
    now; no-op if Streamlit renames it."""
    from streamlit import delta_generator

    check = getattr(delta_generator, "_maybe_print_use_warning", None)
    if check is not None:
        check()


def warm_up() -> str:
    """Import what the pages use, draw a throwaway chart and run the Overview's queries once (the
    database file is attached read-only, as the pages do). Never fails: returns what it did."""
    t0 = time.perf_counter()
    try:
        import pandas as pd
        import plotly.express as px

        from pages import charts, common
        from queries import db as qdb
        from queries.filters import Filters

        frame = pd.DataFrame({"day": pd.to_datetime(["2026-01-01", "2026-01-02"], utc=True), "events": [1, 2],
                              "status": ["success", "failure"]})
        charts.chart_html(px.bar(frame, x="day", y="events", color="status"), "warm_up")
        charts.chart_html(px.line(frame, x="day", y="events", markers=True), "warm_up")
        _first_element_check()
    except Exception as exc:  # the app reports its own import problems on the page
        return f"warm-up stopped after {time.perf_counter() - t0:.2f} s: {type(exc).__name__}"
    t1 = time.perf_counter()
    if common.on_lake():  # the tenant's copy is built (or found current) on the first visit, with a spinner
        return f"warmed up in {t1 - t0:.2f} s (a lake: the chosen tenant's copy is read on the first visit)"
    path = common.db_path()
    if not os.path.exists(path):  # the demo is built on the first visit
        return f"warmed up in {t1 - t0:.2f} s (no database file at {path} yet)"
    try:  # as the pages run them (the attachment is kept between calls); a writer holding the file: give up
        for name in WARM_QUERIES:
            qdb.run(path, name, Filters(), lock_timeout=WARM_LOCK_TIMEOUT_S, limit=10)
    except Exception as exc:  # locked by a writer, an older store, ...: the pages say what is wrong
        return (f"warmed up in {t1 - t0:.2f} s; the database was not read "
                f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})")
    t2 = time.perf_counter()
    return f"warmed up in {t2 - t0:.2f} s (imports and charts {t1 - t0:.2f} s, database {t2 - t1:.2f} s)"
