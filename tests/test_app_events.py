"""The Events page and the event filters (issue 23, items 3 and 7), through AppTest on the demo database: each event
filter and combinations keep exactly the events a plain pandas filter over the events table keeps (the true total,
the newest rows, the CSV of the whole set); filters set in the sidebar go into the URL and the URL gives back the same
filters and rows; the Failures page takes the error-code and identity filters; a URL parameter that cannot be used
is named in a notice on every page, never dropped silently."""

from __future__ import annotations

import io

import duckdb
import pandas as pd
import pytest

from queries.db import release
from queries.events import PAGE_ROWS as LIMIT
from queries.export import export_bytes
from queries.filters import Filters
from tests.test_app_pages import PAGES, _app, _frame, _open
from tests.test_reference_oracle import DETAIL_COMBOS, _detail_filters

URL_NAMES = {"statuses": "status", "actions": "action", "error_codes": "error", "skip_categories": "skip",
             "identity": "identity", "cycle_id": "cycle", "change_id": "change", "job_id": "job"}


def _url(filters: Filters) -> dict:
    out = {}
    for field, param in URL_NAMES.items():
        value = getattr(filters, field)
        if value:
            out[param] = list(value) if isinstance(value, tuple) else value
    return out


@pytest.fixture(scope="module")
def events(demo_db) -> pd.DataFrame:
    with duckdb.connect(str(demo_db), read_only=True) as con:
        frame = con.execute("SELECT * FROM events").df()
    release(str(demo_db))
    return frame


def _plain(events: pd.DataFrame, f: Filters) -> pd.DataFrame:
    """The events every filter keeps, by pandas, newest first."""
    keep = pd.Series(True, index=events.index)
    for field, column in (("statuses", "status"), ("actions", "action"), ("error_codes", "error_code"),
                          ("skip_categories", "skip_category")):
        if getattr(f, field):
            keep &= events[column].isin(getattr(f, field))
    if f.identity:
        who = f.identity.casefold()
        keep &= events[["source_upn", "user_name", "source_id", "target_id"]].apply(
            lambda col: col.astype("string").str.casefold() == who).fillna(False).any(axis=1)
    for field, column in (("cycle_id", "cycle_id"), ("change_id", "change_id"), ("job_id", "job_id")):
        if getattr(f, field):
            keep &= events[column] == getattr(f, field)
    return events[keep].sort_values(["activity_time", "id"], ascending=False)


def _shown_total(at) -> int:
    metrics = {m.label: m.value for m in at.metric}
    return int(metrics["Events matching"].replace(",", "")) if "Events matching" in metrics else 0


@pytest.mark.parametrize("combo", DETAIL_COMBOS)
def test_each_filter_and_combination_shows_what_a_plain_filter_keeps(demo_db, monkeypatch, events, combo):
    f = _detail_filters(str(demo_db), combo)
    at = _open(_app(demo_db, monkeypatch, **_url(f)), "events")
    want = _plain(events, f)
    assert at.session_state["filters"].details() == f.details()
    assert _shown_total(at) == len(want)
    if len(want):
        shown = _frame(at, "id", "event")
        assert list(shown["id"]) == list(want["id"][:LIMIT])
        assert all(link == f"/event?id={i}" for link, i in zip(shown["event"], shown["id"]))  # ids are url-safe here
        caption = f"of {len(want):,} events" if len(want) > LIMIT else f"all {len(want):,} events"
        assert any(caption in c.value for c in at.caption), [c.value for c in at.caption]
        # the CSV download is the whole filtered set, through the export code with the page's filters
        csv = pd.read_csv(io.BytesIO(export_bytes(str(demo_db), "events", at.session_state["filters"], "csv")[0]))
        assert sorted(csv["id"]) == sorted(want["id"])
    else:
        assert any("No event matches" in i.value for i in at.info)


def test_the_events_page_without_filters_shows_every_event_newest_first(demo_db, monkeypatch, events):
    cap = len(events) // 3  # ?rows=N bounds the table below the demo's number of events
    at = _open(_app(demo_db, monkeypatch, rows=str(cap)), "events")
    assert _shown_total(at) == len(events)
    assert list(_frame(at, "id", "event")["id"]) == list(_plain(events, Filters())["id"][:cap])
    assert any(f"Showing the newest {cap:,} of {len(events):,} events" in c.value for c in at.caption)
    assert "Download all events (CSV)" in [b.proto.label for b in at.get("download_button")]


def test_filters_round_trip_through_the_url(demo_db, monkeypatch, events):
    """URL -> filters -> the URL the page writes back -> reload: the same filters and rows. (AppTest 1.67 does not run
    app.py's sidebar again after a widget changes in a multipage app; tests/test_e2e_events.py sets the filters in
    the sidebar of a real browser.)"""
    f = _detail_filters(str(demo_db), "failure_error_identity")
    asked = {"status": ["failure"], "error": list(f.error_codes), "identity": f.identity.upper()}
    at = _open(_app(demo_db, monkeypatch, **asked), "events")
    chosen = at.session_state["filters"]
    assert chosen.details() == {"status": ("failure",), "error": f.error_codes, "identity": f.identity.upper()}
    written = {k: at.query_params.get_all(k) if hasattr(at.query_params, "get_all") else at.query_params[k]
               for k in at.query_params}
    for key, value in asked.items():
        as_list = written[key] if isinstance(written[key], list) else [written[key]]
        assert as_list == (value if isinstance(value, list) else [value]), (key, written)
    rows = list(_frame(at, "id", "event")["id"])
    assert rows == list(_plain(events, chosen)["id"][:LIMIT]) and rows

    again = _open(_app(demo_db, monkeypatch, **written), "events")  # reload the URL the page wrote
    assert again.session_state["filters"] == chosen
    assert list(_frame(again, "id", "event")["id"]) == rows


def test_the_failures_page_takes_the_error_code_and_identity_filters(demo_db, monkeypatch, events):
    f = _detail_filters(str(demo_db), "failure_error_identity")
    at = _open(_app(demo_db, monkeypatch, error=list(f.error_codes), identity=f.identity), "failures")
    want = _plain(events, Filters(statuses=("failure",), error_codes=f.error_codes, identity=f.identity))
    shown = _frame(at, "id", "consecutive_cycles")
    assert list(shown["id"]) == list(want["id"][:500]) and len(shown)
    top = _frame(at, "error_code", "failures", "recommended_action")
    assert list(top["error_code"]) == list(f.error_codes) and int(top["failures"].sum()) == len(want)
    assert not any("Not applied on this page" in c.value for c in at.caption)


def test_a_page_names_the_event_filters_it_does_not_apply(demo_db, monkeypatch):
    at = _open(_app(demo_db, monkeypatch, status="failure", skip="default_access"), "cycles")
    notes = [c.value for c in at.caption if "Not applied on this page" in c.value]
    assert len(notes) == 1 and "status" in notes[0] and "skip category" in notes[0], notes


BAD_URL = {"sp": "nosuchapp", "job": "nosuchjob", "type": "Robot", "status": "bogus", "action": "explode",
           "error": "NoSuchCode", "skip": "nosuchskip", "cycle": "nosuchcycle", "rows": "lots", "colour": "red"}


@pytest.mark.parametrize("name", PAGES)
def test_every_bad_url_parameter_is_named_in_a_notice_on_every_page(demo_db, monkeypatch, name):
    at = _open(_app(demo_db, monkeypatch, **BAD_URL), name)
    notices = " ".join(w.value for w in at.warning)
    for param, value in BAD_URL.items():
        named = f"**{param}={value}**" if param != "colour" else "**colour**"
        assert named in notices, (param, notices)
    assert "showing all apps" in notices
    f = at.session_state["filters"]  # what the page shows instead: every app, job, type, status, ...
    assert (f.service_principal_ids, f.job_id, f.identity_types, f.statuses, f.actions, f.error_codes,
            f.skip_categories) == (None,) * 7
    assert f.cycle_id == "nosuchcycle"  # a free-text filter is kept (and said to match nothing)


def test_an_unknown_range_and_an_unknown_dataset_are_named(demo_db, monkeypatch):
    at = _open(_app(demo_db, monkeypatch, range="fortnight", dataset="secrets"), "export")
    notices = " ".join(w.value for w in at.warning)
    assert "**range=fortnight**" in notices and "**dataset=secrets**" in notices, notices
