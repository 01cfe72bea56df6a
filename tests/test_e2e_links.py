"""Issue 23 items 1, 2 and 6 in a real browser: the real ``streamlit run serve.py`` on the demo database, Debian's
headless Chromium through Playwright at 1440x1000. From a row of the Failures page's "Every failure" table, the
identity link opens the Identity page with that identity picked; from its timeline, the event link opens the Event
page, whose steps' descriptions equal the raw JSON's. Screenshots of the pages on the way go to
test-output/screenshots/ for a person to look at.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import duckdb
import pytest

from bench.dashboard import running_dashboard
from queries.db import release, run
from queries.filters import Filters
from tests.browser import BUDGET_S, chromium_context, wait_for_app
from tests.conftest import ROOT

SCREENSHOTS = ROOT / "test-output" / "screenshots"
ROW_PX = 35  # Streamlit's data grid: header and rows 35 px high


@pytest.fixture(scope="module")
def server(demo_db, tmp_path_factory):
    with running_dashboard(str(demo_db), tmp_path_factory.mktemp("links") / "server.log") as (base, _proc):
        yield base


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    with chromium_context(tmp_path_factory.mktemp("chromium-profile")) as ctx:
        yield ctx


def _plain(text: str) -> str:
    """Shown text without the invisible word joiners pages/common.md_text puts before "@" (no autolinks)."""
    return text.replace("\u2060", "")


def _settled(page) -> None:
    """Until no element is a placeholder of the run before (a deep link reruns the page once through app.py)."""
    page.wait_for_function("""() => document.querySelectorAll(
        '[data-stale="true"], [data-testid="stSkeleton"]').length === 0""", timeout=BUDGET_S * 1000, polling=100)


def _shot(page, name: str) -> None:
    _settled(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def _grid(page, heading: str):
    """The data grid right after the subheader ``heading``."""
    grid = page.locator(f'h3:has-text("{heading}") >> xpath=following::*[@data-testid="stDataFrame"][1]')
    grid.wait_for(state="visible")
    grid.scroll_into_view_if_needed()
    return grid


def _click(page, grid, row: int, x_px: int) -> None:
    """The grid draws on a canvas: the mouse goes over the cell first (the grid tracks the hovered cell)."""
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    x, y = box["x"] + x_px, box["y"] + ROW_PX * (row + 1) + ROW_PX / 2
    page.mouse.move(x, y)
    page.mouse.move(x + 1, y)
    page.mouse.click(x, y)


def _follow(page, grid, row: int, x_px: int):
    """Click the link in data row ``row`` (0 = first) at ``x_px`` from the grid's left edge: the grid opens it in
    a new tab, which is returned once its script run has finished."""
    with page.context.expect_page() as opened:
        _click(page, grid, row, x_px)
    tab = opened.value
    tab.wait_for_load_state("domcontentloaded")
    return tab


def test_from_a_failure_to_its_identity_to_an_event(server, context, demo_db):
    page = context.new_page()
    page.goto(f"{server}/failures?range=all")
    wait_for_app(page, "Failures")
    grid = _grid(page, "Every failure")
    _shot(page, "links-failures-every-failure")
    # the table's CSV holds the data, not the columns added to show it (links, shortened codes)
    button = page.locator('[data-testid="stDownloadButton"] button', has_text="Download top-errors (CSV)")
    with page.expect_download() as download:
        button.click()
    header = Path(download.value.path()).read_text(encoding="utf-8").splitlines()[0].split(",")
    assert header == list(run(str(demo_db), "top_errors", Filters()).columns)
    release(str(demo_db))
    # the first row is the newest failure (failures_recent: newest first)
    with duckdb.connect(str(demo_db), read_only=True) as con:
        upn, source_id = con.execute("SELECT source_upn, source_id FROM events WHERE status = 'failure' "
                                     "ORDER BY activity_time DESC, id DESC LIMIT 1").fetchone()
    release(str(demo_db))

    identity = _follow(page, grid, 0, 40)  # the Identity column is first
    wait_for_app(identity, "Identity")
    params = parse_qs(urlparse(identity.url).query)
    assert params["q"] == [upn] and params["pick"] == [source_id] and params["range"] == ["all"], identity.url
    assert identity.locator('[data-testid="stException"]').count() == 0
    assert upn in _plain(identity.locator('h3:has-text("Timeline of")').inner_text())  # the picked identity's timeline
    timeline = _grid(identity, "Timeline of")  # rows newest first; the Event column is second
    _shot(identity, "links-identity")
    event_tab = None
    for row in range(6):  # the first Entra row (SCIM rows have no event link)
        pages_before = len(context.pages)
        _click(identity, timeline, row, 160)
        identity.wait_for_timeout(1000)
        if len(context.pages) > pages_before:
            event_tab = context.pages[-1]
            break
    assert event_tab is not None, "no event link in the first rows of the timeline"
    event_tab.wait_for_load_state("domcontentloaded")
    wait_for_app(event_tab, "Event")
    event_id = parse_qs(urlparse(event_tab.url).query)["id"][0]
    with duckdb.connect(str(demo_db), read_only=True) as con:
        raw, owner = con.execute("SELECT raw, source_id FROM events WHERE id = ?", [event_id]).fetchone()
    release(str(demo_db))
    assert owner == source_id
    shown = [_plain(t) for t in event_tab.locator('[data-testid="stMarkdownContainer"]').all_inner_texts()]
    descriptions = [s["description"] for s in json.loads(raw)["provisioningSteps"]]
    # a step's header ("<icon>1. import · success · EntryImportAdd"), then its description
    headers = [i for i, text in enumerate(shown) if re.search(r"\d+\. \S+ · .+ · ", text)]
    assert [shown[i + 1].strip() for i in headers] == [d.strip() for d in descriptions]
    assert event_tab.locator('[data-testid="stException"]').count() == 0
    _shot(event_tab, "links-event")
    event_tab.locator('h3:has-text("Steps")').scroll_into_view_if_needed()
    _shot(event_tab, "links-event-steps")
    event_tab.locator('h3:has-text("SCIM requests correlated")').scroll_into_view_if_needed()
    _shot(event_tab, "links-event-scim")


def test_the_event_page_of_a_real_azure_monitor_record(tmp_path, context):
    """The real Event Hub sample (diagnostic settings, PascalCase keys, numeric enums): the page shows the file's own
    step descriptions."""
    from ingest.file_ingest import ingest_files
    from tests.test_event_page import REAL, _file_steps, _records

    db = tmp_path / "real.duckdb"
    sample = REAL / "elastic-provisioninglogs-raw.log"
    ingest_files(str(db), [str(sample)], quiet=True)
    steps = dict(map(_file_steps, _records(sample)))  # an id sent twice: the later record is the stored one
    event_id, descriptions = next((i, d) for i, d in steps.items() if d)
    with running_dashboard(str(db), tmp_path / "server.log") as (base, _proc):
        page = context.new_page()
        page.goto(f"{base}/event?range=all&id={event_id}")
        wait_for_app(page, "Event")
        _settled(page)
        shown = [_plain(t) for t in page.locator('[data-testid="stMarkdownContainer"]').all_inner_texts()]
        headers = [i for i, text in enumerate(shown) if re.search(r"\d+\. \S+ · .+ · ", text)]
        assert [shown[i + 1].strip() for i in headers] == [d.strip() for d in descriptions]
        _shot(page, "links-event-real-sample")
        page.locator('h3:has-text("Ids")').scroll_into_view_if_needed()
        _shot(page, "links-event-real-sample-steps")
        page.close()


def test_a_linked_cycle_stays_in_the_url_and_the_wide_tables_fit(server, context, demo_db):
    """The Sync cycles page opened with ``cycle=`` shows that cycle's events and keeps it in the URL; screenshots of
    it and of the Constraint violations page (identity and what matters first, at 1440 px)."""
    with duckdb.connect(str(demo_db), read_only=True) as con:
        cycle_id = con.execute("SELECT cycle_id FROM events WHERE status = 'failure' GROUP BY cycle_id "
                               "ORDER BY count(*) DESC, cycle_id LIMIT 1").fetchone()[0]
    release(str(demo_db))
    page = context.new_page()
    page.goto(f"{server}/cycles?range=all&cycle={cycle_id}")
    wait_for_app(page, "Sync cycles")
    _settled(page)
    assert parse_qs(urlparse(page.url).query)["cycle"] == [cycle_id], page.url
    events = page.locator('[data-testid="stDataFrame"]').last  # the cycle's events: the page's last table
    events.scroll_into_view_if_needed()
    _shot(page, "links-cycle-events")
    page.goto(f"{server}/violations?range=all")
    wait_for_app(page, "Constraint violations")
    page.locator('[data-testid="stDataFrame"]').first.scroll_into_view_if_needed()
    _shot(page, "links-violations")
    page.close()
