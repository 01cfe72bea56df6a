"""End-to-end: the Events page in Debian's headless Chromium against the real ``streamlit run serve.py`` on the demo
database. Event filters given in the URL show in the sidebar and narrow the page to what a plain query counts; a
filter typed into the sidebar goes into the URL, and opening that URL in a fresh tab gives the same filters and
the same count; a URL parameter the page cannot use is named on the page. Saves a 1440x1000 screenshot of the
Events page to test-output/screenshots/events.png (and the filtered view and the notices beside it) for a
person to look at.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, quote, urlparse

import duckdb
import pytest

from bench.dashboard import running_dashboard
from queries.db import release
from tests.browser import chromium_context, wait_for_app
from tests.conftest import ROOT

SCREENSHOTS = ROOT / "test-output" / "screenshots"


@pytest.fixture(scope="module")
def server(demo_db, tmp_path_factory):
    with running_dashboard(str(demo_db), tmp_path_factory.mktemp("streamlit") / "server.log") as running:
        yield running[0]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with chromium_context(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


def _plain_count(db, where: str, params: list) -> int:
    with duckdb.connect(str(db), read_only=True) as con:
        n = con.execute(f"SELECT count(*) FROM events WHERE {where}", params).fetchone()[0]
    release(str(db))
    return n


def _sample(db) -> tuple[str, str]:
    """The most frequent error code and one identity (UPN) failing with it, by plain SQL."""
    with duckdb.connect(str(db), read_only=True) as con:
        code, upn = con.execute("SELECT error_code, min(source_upn) FROM events WHERE status = 'failure' "
                                "AND source_upn IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1").fetchone()
    release(str(db))
    return code, upn


def _shot(tab, name: str) -> None:
    """A 1440x1000 screenshot once the data grid (a canvas) has drawn its cells."""
    tab.locator('[data-testid="stDataFrame"] [role="gridcell"]').first.wait_for(state="attached")
    tab.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def _matching(tab) -> int:
    text = tab.locator('[data-testid="stMetric"]', has_text="Events matching").inner_text()
    return int(re.search(r"([\d,]+)\s*$", text.strip()).group(1).replace(",", ""))


def test_event_filters_round_trip_through_the_url(server, browser, demo_db):
    from playwright.sync_api import expect

    code, upn = _sample(demo_db)
    tab = browser.new_page()
    try:
        tab.goto(f"{server}/events?range=all&status=failure&error={quote(code)}")
        wait_for_app(tab, "Events")
        assert tab.locator('[data-testid="stException"]').count() == 0
        sidebar = tab.locator('[data-testid="stSidebar"]')
        assert sidebar.locator('[data-testid="stMultiSelect"]', has_text="Status").inner_text().count("failure")
        assert code in sidebar.locator('[data-testid="stMultiSelect"]', has_text="Error code").inner_text()
        assert _matching(tab) == _plain_count(demo_db, "status = 'failure' AND error_code = ?", [code]) > 0

        # a filter typed into the sidebar goes into the URL and narrows the rows
        box = sidebar.locator('input[aria-label="Identity"]')
        box.fill(upn.upper())
        box.press("Enter")
        tab.wait_for_function("(upn) => new URL(location.href).searchParams.get('identity') === upn", arg=upn.upper())
        wait_for_app(tab, "Events")
        want = _plain_count(demo_db, "status = 'failure' AND error_code = ? AND upper(source_upn) = upper(?)",
                            [code, upn])
        tab.locator('[data-testid="stMetric"]', has_text="Events matching").filter(has_text=f"{want:,}").wait_for()
        assert _matching(tab) == want > 0
        url = tab.url
        asked = parse_qs(urlparse(url).query)
        assert asked["status"] == ["failure"] and asked["error"] == [code] and asked["identity"] == [upn.upper()]
        _shot(tab, "events-filtered")
    finally:
        tab.close()

    again = browser.new_page()  # the shared link, in a fresh session
    try:
        again.goto(url)
        wait_for_app(again, "Events")
        assert _matching(again) == want
        side = again.locator('[data-testid="stSidebar"]')
        expect(side.locator('input[aria-label="Identity"]')).to_have_value(upn.upper())
        assert code in side.locator('[data-testid="stMultiSelect"]', has_text="Error code").inner_text()
        assert parse_qs(urlparse(again.url).query) == asked
    finally:
        again.close()


def test_the_events_page_and_its_notices(server, browser, demo_db):
    tab = browser.new_page()
    try:
        tab.goto(f"{server}/events?range=all&sp=no-such-app&status=bogus")
        wait_for_app(tab, "Events")
        body = tab.locator('[data-testid="stMain"]')
        body.get_by_text("app id no-such-app is not in this database; showing all apps").wait_for()
        body.get_by_text(re.compile(r"status=bogus.*unknown status")).wait_for()
        assert _matching(tab) == _plain_count(demo_db, "true", [])
        _shot(tab, "events-url-notices")
        tab.goto(f"{server}/events?range=all")
        wait_for_app(tab, "Events")
        _shot(tab, "events")
    finally:
        tab.close()
