"""Real Chromium on every page of the real dashboard (``streamlit run serve.py`` on the demo database):

- no outside requests (issue 23, item 8): every request the browser makes, from the page and from the chart
  iframes, is intercepted; one that is not to the dashboard's own origin is aborted and fails the test (the
  Material favicon from fonts.gstatic.com did, on every page load);
- a screenshot of every page at 1440x1000, what a person sees first, saved as
  ``test-output/screenshots/page-<page>.png`` for a person to look at (the pages are read from app.py's
  ``st.Page`` entries, so a new page is covered without editing this test).
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import duckdb
import pytest

from bench.dashboard import ARGS as CHROMIUM_ARGS
from bench.dashboard import CHROMIUM, _pages, running_dashboard
from tests.browser import BUDGET_S, wait_for_app
from tests.conftest import ROOT, SIM_END

SCREENSHOTS = ROOT / "test-output" / "screenshots"
VIEWPORT = {"width": 1440, "height": 1000}

# Every chart iframe (pages/charts.py) drew its charts: as many .main-svg holders as [data-chart] divs.
_CHARTS_DRAWN_JS = """() => {
  let all = 0, drawn = 0;
  for (const frame of document.querySelectorAll('iframe[srcdoc*="data-chart="]')) {
    const doc = frame.contentDocument;
    if (!doc || doc.querySelectorAll("[data-chart]").length === 0) return false;  // not loaded yet
    all += doc.querySelectorAll("[data-chart]").length;
    drawn += doc.querySelectorAll("[data-chart]:has(.main-svg)").length;
  }
  return drawn === all;
}"""

# Elements whose code chunk is still loading show a grey placeholder (Streamlit's Suspense fallback).
_NO_PLACEHOLDERS_JS = """() => document.querySelectorAll(
  '[data-testid="stSkeleton"], [data-testid="stSkeletonElement"], [data-testid="stAppSkeleton"]').length === 0"""


def _wait_until_settled(page) -> None:
    """The page's run finished with a title, its charts drew and no element is a placeholder, and it still is
    a moment later (a rerun the URL or a widget started redraws the charts)."""
    for _ in range(20):
        page.wait_for_function("() => document.querySelector('[data-testid=\"stMain\"] h1') !== null")
        wait_for_app(page)
        page.wait_for_function(_CHARTS_DRAWN_JS, timeout=BUDGET_S * 1000, polling=100)
        page.wait_for_function(_NO_PLACEHOLDERS_JS, timeout=BUDGET_S * 1000, polling=100)
        page.wait_for_timeout(500)
        if page.evaluate(_CHARTS_DRAWN_JS) and page.evaluate(_NO_PLACEHOLDERS_JS):
            wait_for_app(page)
            return
    raise AssertionError(f"{page.url} never settled")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _samples(db) -> dict:
    """Query parameters that give the pages something to show: a failing identity, a failed event."""
    with duckdb.connect(str(db), read_only=True) as con:
        upn, event_id = con.execute(
            "SELECT source_upn, arg_max(id, activity_time) FROM events WHERE status = 'failure' AND source_upn "
            "IS NOT NULL GROUP BY source_upn ORDER BY count(*) DESC, source_upn LIMIT 1").fetchone()
    return {"identity": f"q={upn}", "event": f"id={event_id}"}


@pytest.fixture(scope="module")
def dashboard(demo_db, tmp_path_factory):
    with running_dashboard(str(demo_db), tmp_path_factory.mktemp("streamlit") / "server.log") as (base, _proc):
        yield base


@pytest.fixture(scope="module")
def guarded(dashboard, tmp_path_factory):
    """A 1440x1000 Chromium whose every request is checked: (context, outside requests seen)."""
    from playwright.sync_api import sync_playwright

    origin = _origin(dashboard)
    outside: list[str] = []

    def check(route):
        url = route.request.url
        if url.startswith(("data:", "blob:", "about:")) or _origin(url) == origin:
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport=VIEWPORT)
        context.set_default_timeout(BUDGET_S * 1000)
        context.route("**/*", check)
        # WebSockets are not routed: checked on their own
        context.on("page", lambda p: p.on("websocket", lambda ws: outside.append(ws.url)
                                         if _origin(ws.url.replace("ws", "http", 1)) != origin else None))
        try:
            yield context, outside
        finally:
            context.close()


def _page_urls(base: str, samples: dict) -> list[tuple[str, str]]:
    """(name, url) of every page of app.py, plus the Overview on one day (hourly bins)."""
    urls = []
    for path in _pages():
        name = path or "overview"
        extra = samples.get(path)
        urls.append((name, f"{base}/{path}?range=all" + (f"&{extra}" if extra else "")))
    day = (SIM_END - timedelta(days=1)).date().isoformat()  # the demo's last day
    urls.append(("overview-one-day", f"{base}/?range=custom&from={day}&to={day}"))
    return urls


def test_every_page_loads_without_outside_requests_and_is_photographed(dashboard, guarded, demo_db):
    context, outside = guarded
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = context.new_page()
    page.on("websocket", lambda ws: outside.append(ws.url) if _origin(ws.url.replace("ws", "http", 1))
            != _origin(dashboard) else None)
    seen_requests: list[str] = []
    page.on("request", lambda r: seen_requests.append(r.url))
    shots = []
    try:
        for name, url in _page_urls(dashboard, _samples(demo_db)):
            page.goto(url)
            _wait_until_settled(page)
            assert page.locator('[data-testid="stException"]').count() == 0, name
            path = SCREENSHOTS / f"page-{name}.png"
            page.screenshot(path=str(path))
            shots.append(path)
    finally:
        page.close()
    assert outside == [], f"requests outside the dashboard: {outside}"
    # the check saw the page's own requests (the interception is live) and the favicon is ours
    assert any("/_stcore/" in u or "/static/" in u for u in seen_requests)
    assert all(p.stat().st_size > 10_000 for p in shots)
    assert len(shots) == len(_pages()) + 1


def test_the_favicon_is_served_by_the_dashboard(dashboard, guarded):
    context, outside = guarded
    page = context.new_page()
    try:
        page.goto(f"{dashboard}/?range=all")
        wait_for_app(page, "Overview")
        icons = page.eval_on_selector_all('link[rel~="icon"]', "els => els.map(e => e.href)")
    finally:
        page.close()
    assert icons and all(_origin(u) == _origin(dashboard) for u in icons), icons
    response = context.request.get(icons[0])
    assert response.ok and response.headers["content-type"].startswith("image/")
    assert outside == []
