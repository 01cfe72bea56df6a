"""AppTest of every dashboard page against the demo database: the numbers shown equal the simulator's
ground truth, filters and the URL change and restore the view, every table has a CSV download, and
empty or broken databases give a clear message instead of a stack trace."""

from __future__ import annotations

import base64
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from pages.common import md_text
from tests.conftest import ROOT, chart_figures, html_tables, run_cli

PAGES = ["overview", "events", "cycles", "failures", "skipped", "violations", "scim", "identity", "export"]


def _app(db, monkeypatch, **params) -> AppTest:
    monkeypatch.setenv("PROVLENS_DB", str(db))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params["range"] = "all"
    for key, value in params.items():
        at.query_params[key] = value
    return at


def _open(at: AppTest, page: str) -> AppTest:
    at.run()
    if page != "overview":
        at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


@pytest.fixture()
def page(demo_db, monkeypatch):
    def opener(name: str, **params) -> AppTest:
        return _open(_app(demo_db, monkeypatch, **params), name)
    return opener


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _frame(at, *columns: str) -> pd.DataFrame:
    """The first table on the page that has all the given columns."""
    for df in at.dataframe:
        if set(columns) <= set(df.value.columns):
            return df.value
    raise AssertionError(f"no table with columns {columns}")


def _frames(at, *columns: str) -> list[pd.DataFrame]:
    return [df.value for df in at.dataframe if set(columns) <= set(df.value.columns)]


def _charts(at) -> list[dict]:
    return chart_figures(at)


def _values(array) -> list:
    """A Plotly JSON array: a plain list, or typed-array data (``{"dtype", "bdata"}``)."""
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text).tz_convert("UTC")


def _same_time(a, b) -> bool:
    return abs(pd.Timestamp(a) - pd.Timestamp(b)) < pd.Timedelta(milliseconds=1)


def test_cycles_page_matches_truth(page, truth, sim):
    at = page("cycles")
    m = _metrics(at)
    assert m["Logged cycles"] == f"{len(truth['cycles']):,}"
    assert m["Initial cycles"] == str(sum(c["kind"] == "initial" for c in truth["cycles"]))
    assert m["Missed cycles"] == str(len(truth["missed_cycles"]))
    # the job snapshots' quarantine periods and the one only the directory audit log knows (issue 24)
    quarantines = sorted(truth["quarantine"] + truth["directory_audits"]["audit_only_quarantine"],
                         key=lambda q: q["began"])
    assert m["Quarantine periods"] == str(len(quarantines))
    missed = _frame(at, "expected_at", "gap_minutes")
    assert sorted(missed["gap_minutes"]) == sorted(x["gap_minutes"] for x in truth["missed_cycles"])
    assert sorted(missed["service_principal_id"]) == sorted(x["service_principal_id"] for x in truth["missed_cycles"])
    periods = _frame(at, "began", "ended", "reason")
    assert [_same_time(a, _ts(b["began"])) for a, b in zip(periods["began"], quarantines)] == \
        [True] * len(quarantines)
    assert len(_charts(at)) >= 3
    # choosing a cycle lists exactly its events
    biggest = max(truth["cycles"], key=lambda c: c["events"])
    at.selectbox(key="cycle_pick").set_value(biggest["cycle_id"]).run()
    events = _frame(at, "activity_time", "action", "status", "id")
    assert len(events) == biggest["events"]
    assert set(events["id"]) == {e["id"] for e in sim.events if e["cycleId"] == biggest["cycle_id"]}


def test_failures_page_matches_truth(page, truth):
    at = page("failures")
    top = _frame(at, "error_code", "failures", "identities", "recommended_action")
    assert dict(zip(top["error_code"], top["failures"])) == truth["events"]["failures_by_code"]
    assert _metrics(at)["Failures"] == f"{sum(truth['events']['failures_by_code'].values()):,}"
    # the chart's bars add up to the same counts per code
    chart = next(c for c in _charts(at) if "error code" in c["layout"]["title"]["text"])
    per_code = Counter()
    for trace in chart["data"]:
        per_code[trace["name"]] += sum(_values(trace["y"]))
    assert dict(per_code) == truth["events"]["failures_by_code"]
    # every identity with an open violation keeps failing cycle after cycle and is listed as recurring
    recurring = _frame(at, "consecutive_cycles", "failing_since")
    open_ids = {v["source_id"] for v in truth["violations"] if v["state"] == "open" and v["failed_events"] > 1}
    assert open_ids <= set(recurring["source_id"])
    assert (recurring["consecutive_cycles"] >= 2).all()
    # the bounded "every failure" table shows all of the demo's failures, newest first, and says so
    total = sum(truth["events"]["failures_by_code"].values())
    every = _frame(at, "activity_time", "next_retry_at", "consecutive_cycles")
    assert len(every) == total
    assert every["activity_time"].is_monotonic_decreasing
    assert any(f"Showing all {total:,} failures" in c.value for c in at.caption)


def test_bounded_tables_show_the_limit_and_the_true_total(page, truth, sim):
    # rows=N in the URL lowers every bounded table's limit below the truth counts
    failures_total = sum(truth["events"]["failures_by_code"].values())
    at = page("failures", rows="5")
    every = _frame(at, "activity_time", "next_retry_at", "consecutive_cycles")
    assert len(every) == 5 < failures_total
    newest = sorted((_ts(e["activityDateTime"]) for e in sim.events
                     if e["provisioningStatusInfo"]["status"] == "failure"), reverse=True)
    assert [_same_time(a, b) for a, b in zip(every["activity_time"], newest[:5])] == [True] * 5
    assert any(f"newest 5 of {failures_total:,} failures" in c.value for c in at.caption)
    assert _metrics(at)["Failures"] == f"{failures_total:,}"  # totals are not limited
    recurring = _frame(at, "consecutive_cycles", "failing_since")
    recurring_total = int(_metrics(at)["Recurring"].replace(",", ""))
    assert len(recurring) == min(5, recurring_total)
    assert recurring["consecutive_cycles"].is_monotonic_decreasing  # longest-failing first
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Download all failures (CSV)" in labels and "Download all recurring-failures (CSV)" in labels

    expected = truth["skips"]["default_access_users"]
    at = page("skipped", rows="2")
    rows = _frame(at, "source_upn", "first_seen", "last_seen", "cycles")
    assert len(rows) == 2 < len(expected)
    assert list(rows["cycles"]) == sorted((u["cycles"] for u in expected), reverse=True)[:2]
    assert any(f"Default access**: {len(expected)} identities" in md.value for md in at.markdown)
    assert any(f"2 of {len(expected)} identities" in c.value for c in at.caption)

    biggest = max(truth["cycles"], key=lambda c: c["events"])
    at = page("cycles", rows="3")
    at.selectbox(key="cycle_pick").set_value(biggest["cycle_id"]).run()
    events = _frame(at, "activity_time", "action", "status", "id")
    first = sorted((_ts(e["activityDateTime"]), e["id"]) for e in sim.events if e["cycleId"] == biggest["cycle_id"])
    assert len(events) == 3 < biggest["events"]
    assert list(events["id"]) == [i for _, i in first[:3]]
    assert any(f"first 3 of {biggest['events']:,} events" in c.value for c in at.caption)


def test_violation_tables_show_the_most_recently_seen_and_say_how_many_there_are(page, truth):
    # rows=N lowers the per-kind limit (500 on a real tenant) below the demo's counts; totals are not limited
    for kind in ("duplicate_user_name", "non_work_email"):
        assert sum(v["kind"] == kind for v in truth["violations"]) > 1, kind
    at = page("violations", rows="1")
    tables = _frames(at, "user_name", "state", "evidence")
    assert [len(t) for t in tables] == [1, 1]
    dup = [v for v in truth["violations"] if v["kind"] == "duplicate_user_name"]
    latest = max(_ts(v["last_seen"]) for v in dup)
    row = tables[0].iloc[0]
    (newest,) = [v for v in dup if (v["source_id"], v["service_principal_id"]) == (row.source_id,
                                                                                   row.service_principal_id)]
    assert _same_time(tables[0]["last_seen"].iloc[0], latest) and _ts(newest["last_seen"]) == latest
    assert any(f"most recently seen 1 of {len(dup):,} violations" in c.value for c in at.caption)
    assert _metrics(at)["Duplicate userName"] == f"{len(dup):,}"
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Download all violations-duplicate_user_name (CSV)" in labels
    assert "Download all violations-non_work_email (CSV)" in labels
    # the duplicate to inspect is picked from the table's rows
    assert at.selectbox(key="violation_user").options == [f"{newest['user_name']} ({newest['state']})"]


def test_skipped_page_matches_truth(page, truth):
    at = page("skipped")
    m = _metrics(at)
    for category, count in truth["skips"]["by_category"].items():
        assert m[category.replace("_", " ").capitalize()] == f"{count:,}", category
    rows = _frame(at, "source_upn", "first_seen", "last_seen", "cycles")
    expected = truth["skips"]["default_access_users"]
    assert len(rows) == len(expected)
    got = {(r.source_id, r.service_principal_id): r for r in rows.itertuples()}
    for user in expected:
        row = got[(user["source_id"], user["service_principal_id"])]
        assert row.source_upn == user["upn"]
        assert row.cycles == user["cycles"]
        assert _same_time(row.first_seen, _ts(user["first_seen"]))
        assert _same_time(row.last_seen, _ts(user["last_seen"]))
    assert any("Default Access" in md.value for md in at.markdown)  # what to do about it


def test_violations_page_matches_truth(page, truth):
    at = page("violations")
    tables = _frames(at, "user_name", "state", "evidence")
    dup, non_work = tables[0], tables[1]
    truth_dup = [v for v in truth["violations"] if v["kind"] == "duplicate_user_name"]
    truth_email = [v for v in truth["violations"] if v["kind"] == "non_work_email"]
    assert sorted(zip(dup["source_id"], dup["state"])) == sorted((v["source_id"], v["state"]) for v in truth_dup)
    assert sorted(zip(dup["user_name"].str.lower())) == sorted((v["user_name"].lower(),) for v in truth_dup)
    assert sorted(zip(non_work["source_id"], non_work["email_domain"], non_work["state"])) == \
        sorted((v["source_id"], v["email_domain"], v["state"]) for v in truth_email)
    m = _metrics(at)
    assert m["Duplicate userName"] == str(len(truth_dup))
    assert m["Non-work email"] == str(len(truth_email))
    assert m["Open"] == str(sum(v["state"] == "open" for v in truth["violations"]))
    assert any(md_text(d) in c.value for c in at.caption for d in truth["org_domains"])  # allowed domains, escaped
    # the SCIM trail's side of the chosen duplicate: its creates were rejected with 409 for that userName
    chosen = at.selectbox(key="violation_user").value
    scim = _frame(at, "request_id", "status", "match_class")
    assert (scim["status"] == 409).any()
    assert set(scim["user_name"].str.lower()) == {chosen.lower()}
    # showing only open ones hides the resolved rows
    at.segmented_control(key="violation_state").set_value(["open"]).run()
    shown = pd.concat(_frames(at, "user_name", "state", "evidence"))
    assert set(shown["state"]) == {"open"}
    assert len(shown) == sum(v["state"] == "open" for v in truth["violations"])


def test_scim_page_matches_truth(page, truth):
    at = page("scim")
    scim = truth["scim"]
    m = _metrics(at)
    assert m["Requests"] == f"{scim['total']:,}"
    assert m["Probes"] == f"{scim['probes']:,}"
    assert m["Errors"] == f"{sum(n for s, n in scim['by_status'].items() if int(s) >= 400):,}"
    assert m["401/403"] == f"{sum(n for s, n in scim['by_status'].items() if s in ('401', '403')):,}"
    unlogged = _frame(at, "request_id", "detail", "client_ip")
    assert set(unlogged["request_id"]) <= set(scim["scim_only_request_ids"])
    assert len(unlogged) == scim["other_client"]
    assert len(_frame(at, "event_id", "request_status")) == len(scim["contradictions"])
    assert len(_charts(at)) == 3


def test_identity_search_from_url_shows_one_timeline(page, truth, sim):
    person = next(v for v in truth["violations"] if v["kind"] == "duplicate_user_name")
    upn = next(e["sourceIdentity"]["details"]["UserPrincipalName"] for e in sim.events
               if e["sourceIdentity"]["id"] == person["source_id"])
    at = page("identity", q=upn.upper())  # case-insensitive
    assert at.text_input(key="identity_term").value == upn.upper()
    assert at.query_params["q"] in (upn.upper(), [upn.upper()])
    timeline = _frame(at, "time", "source", "action", "status", "ref")
    mine = {e["id"] for e in sim.events if e["sourceIdentity"]["id"] == person["source_id"]}
    assert set(timeline.loc[timeline["source"] == "entra", "ref"]) == mine
    assert (timeline["source"] == "scim").any()  # the SCIM server's side of the same person
    assert len(_charts(at)) == 1
    # a search value that looks like SQL is only ever a bound parameter
    at.text_input(key="identity_term").set_value("x' OR '1'='1").run()
    assert not at.exception and not at.error
    assert any("Nobody matches" in i.value for i in at.info)


def test_export_page_uses_the_export_code(page, truth):
    at = page("export", dataset="failures")
    assert at.selectbox(key="export_dataset").value == "failures"
    assert _metrics(at)["Rows"] == f"{sum(truth['events']['failures_by_code'].values()):,}"
    at.selectbox(key="export_dataset").set_value("events").run()
    assert _metrics(at)["Rows"] == f"{truth['events']['total']:,}"
    assert at.query_params["dataset"] in ("events", ["events"])
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Download events.csv" in labels
    at.radio(key="export_format").set_value("parquet").run()
    assert "Download events.parquet" in [b.proto.label for b in at.get("download_button")]


def test_job_filter_from_the_url_changes_results(demo_db, monkeypatch, truth):
    # With a pages/ directory beside app.py, AppTest (1.67) re-runs only the page script after the first
    # run, so the sidebar cannot be clicked here: each view starts from its URL (the browser test clicks it).
    app = truth["apps"][1]
    mine = sum(c["job_id"] == app["job_id"] for c in truth["cycles"])
    assert 0 < mine < len(truth["cycles"])
    at = _open(_app(demo_db, monkeypatch, job=app["job_id"]), "overview")
    assert at.sidebar.selectbox(key="f_job").value == app["job_id"]
    assert _metrics(at)["Events"] == f"{truth['events']['by_service_principal'][app['service_principal_id']]:,}"
    assert at.query_params["job"] in (app["job_id"], [app["job_id"]])
    at.switch_page("pages/cycles.py").run()
    assert _metrics(at)["Logged cycles"] == str(mine)
    unfiltered = _open(_app(demo_db, monkeypatch), "cycles")
    assert _metrics(unfiltered)["Logged cycles"] == str(len(truth["cycles"]))


def test_unknown_job_in_the_url_falls_back_to_all_jobs(demo_db, monkeypatch, truth):
    at = _open(_app(demo_db, monkeypatch, job="no-such-job"), "overview")
    assert at.sidebar.selectbox(key="f_job").value == ""
    assert _metrics(at)["Events"] == f"{truth['events']['total']:,}"


@pytest.mark.parametrize("preset", ["30d", "24h"])
def test_a_preset_view_is_answered_from_the_cache_on_the_next_visit(demo_db, monkeypatch, preset):
    """The default view ("last 30 days") counts from the current minute, so a second visit (a new session: the
    sidebar runs again) finds every query cached; counted from the exact time it ran them all again."""
    from datetime import datetime, timezone

    from queries import db as qdb

    calls = []
    original = qdb.run

    def counting(*args, **kwargs):
        calls.append(args[1])
        return original(*args, **kwargs)

    monkeypatch.setattr(qdb, "run", counting)
    for _attempt in range(2):  # a minute boundary between the two visits starts a new minute's cache: retry
        minute = datetime.now(timezone.utc).replace(second=0, microsecond=0)
        first = _open(_app(demo_db, monkeypatch, range=preset), "overview")
        since = first.session_state["filters"].since
        before = len(calls)
        _open(_app(demo_db, monkeypatch, range=preset), "overview")
        if datetime.now(timezone.utc).replace(second=0, microsecond=0) == minute:
            break
    assert since is not None and (since.second, since.microsecond) == (0, 0)
    assert calls[before:] == []  # (the first visit may find some queries cached by earlier tests)


@pytest.mark.parametrize("name", [p for p in PAGES if p != "export"])
def test_every_table_has_a_csv_download(page, name):
    at = page(name, q="contoso") if name == "identity" else page(name)
    tables = len(at.dataframe) + len(html_tables(at))
    csv_buttons = [b for b in at.get("download_button") if "(CSV)" in b.proto.label]
    assert tables >= 1
    assert len(csv_buttons) == tables


@pytest.mark.parametrize("name", ["overview", "cycles", "failures", "skipped", "violations"])
def test_empty_period_says_what_to_do(demo_db, monkeypatch, name):
    at = _app(demo_db, monkeypatch, range="custom")
    at.query_params["from"] = "2001-01-01"
    at.query_params["to"] = "2001-01-02"
    at = _open(at, name)
    assert any("Widen the time range" in i.value for i in at.info)


def test_scim_page_without_audit_trail_says_how_to_load_it(tmp_path, monkeypatch, sim_dir):
    db = tmp_path / "entra-only.duckdb"
    run_cli("ingest", "files", str(sim_dir / "graph"), "--db", str(db), check=True)
    at = _open(_app(db, monkeypatch), "scim")
    assert any("python -m ingest scim" in i.value for i in at.info)


def test_unreadable_database_gives_a_clear_message(tmp_path, monkeypatch):
    db = tmp_path / "not-a-db.duckdb"
    db.write_bytes(b"this is not a DuckDB file" * 100)
    at = _app(db, monkeypatch).run()
    assert not at.exception, at.exception
    assert any("not a readable DuckDB database" in e.value for e in at.error)
