"""Dates in the URL (issue 27): ``?range=custom&to=9999-12-31`` raised an uncaught OverflowError on every page.
A bad or out-of-range day (not a date, outside 1970-2200, ``from`` after ``to``) now gives a visible notice and
the default time range, never a crash; a good custom range is used as before."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from pages import common
from tests import reliability_harness as h
from tests.test_app_pages import PAGES, _app, _open


def _notices(at) -> list[str]:
    return [w.value for w in at.warning if "in the URL" in w.value or "range starts" in w.value]


def _check_default(at) -> None:
    # (with a pages/ folder, AppTest 1.67 re-runs only the page after a switch, without the sidebar's widgets:
    # the filters the sidebar handed to the page say which range it got)
    since = at.session_state["filters"].since
    assert since is not None and at.session_state["filters"].until is None
    assert abs((datetime.now(timezone.utc) - since).days - 30) <= 1


@pytest.mark.parametrize("name", PAGES)
def test_a_day_out_of_range_in_the_url_gives_a_notice_on_every_page(demo_db, monkeypatch, name):
    at = _open(_app(demo_db, monkeypatch, range="custom", to="9999-12-31"), name)
    assert any("to=" + common.md_text("9999-12-31") in n for n in _notices(at)), [w.value for w in at.warning]
    _check_default(at)


@pytest.mark.parametrize("params", h.URL_BAD_DAYS, ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()))
def test_bad_days_in_the_url_give_a_notice_and_the_default_range(demo_db, monkeypatch, params):
    at = _open(_app(demo_db, monkeypatch, range="custom", **params), "overview")
    notices = _notices(at)
    assert len(notices) == 1, [w.value for w in at.warning]
    assert "](http" not in notices[0]  # the URL's text is shown escaped (common.md_text)
    _check_default(at)


def test_a_good_custom_range_is_used_without_a_notice(demo_db, monkeypatch):
    at = _open(_app(demo_db, monkeypatch, range="custom", **{"from": "2026-10-28", "to": "2026-10-30"}), "cycles")
    assert _notices(at) == []
    f = at.session_state["filters"]
    utc = timezone.utc
    assert (f.since, f.until) == (datetime(2026, 10, 28, tzinfo=utc), datetime(2026, 10, 31, tzinfo=utc))


def test_the_notice_goes_when_the_range_is_changed(demo_db, monkeypatch):
    at = _open(_app(demo_db, monkeypatch, range="custom", to="9999-12-31"), "overview")
    assert at.sidebar.selectbox(key="f_range").value == common.DEFAULT_PRESET
    assert _notices(at) and at.query_params["range"] in (common.DEFAULT_PRESET, [common.DEFAULT_PRESET])
    at.sidebar.selectbox(key="f_range").set_value("all").run()
    assert _notices(at) == [] and not at.exception
