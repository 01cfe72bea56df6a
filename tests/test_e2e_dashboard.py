"""End-to-end: the real ``streamlit run serve.py`` (app.py, warmed up) against the demo database, driven
by Debian's headless Chromium through Playwright. Every page loads without an exception element, its Plotly
charts render (plotly.js's basic bundle from static/, in an iframe), one CSV download per page holds the
rows the simulator's ground truth predicts, and the sidebar's job filter changes the numbers and the URL.
Screenshots go to test-output/screenshots/ for a person to look at.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from bench.dashboard import running_dashboard
from tests.browser import BUDGET_S, chromium_context, wait_for_app
from tests.conftest import ROOT

SCREENSHOTS = ROOT / "test-output" / "screenshots"
CHART_FRAMES = 'iframe[srcdoc*="data-chart="]'  # pages/charts.py draws charts in iframes

# No skip: scripts/setup.sh installs Debian's chromium, so a missing browser is a failure, not a pass.


@pytest.fixture(scope="module")
def server_log(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("streamlit") / "server.log"


@pytest.fixture(scope="module")
def dashboard(demo_db, server_log):
    """One dashboard server for the whole module, stopped in teardown whatever happens: (base URL, process)."""
    with running_dashboard(str(demo_db), server_log) as running:
        yield running


@pytest.fixture(scope="module")
def server(dashboard):
    return dashboard[0]


def test_the_server_runs_on_uvloop_and_httptools(dashboard):
    """requirements.txt installs Streamlit's "performance" extra for its uvicorn server (B6): it is loaded."""
    maps = Path(f"/proc/{dashboard[1].pid}/maps").read_text()
    assert "/uvloop/loop." in maps and "/httptools/parser/parser." in maps


def test_the_server_warmed_up_before_it_took_connections(server, server_log):
    """serve.py's lifespan ran pages/warmup.py on the demo database before the health check answered."""
    lines = [line for line in server_log.read_text().splitlines() if line.startswith("provlens: ")]
    assert len(lines) == 1 and "database" in lines[0] and "not read" not in lines[0], lines
    # serve.py froze the warmed-up objects out of the garbage collector (the post-run collections are cheap)
    frozen = re.search(r"; ([\d,]+) objects frozen out of the garbage collector$", lines[0])
    assert frozen and int(frozen.group(1).replace(",", "")) > 10_000, lines


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    # every wait (an element, a download, a URL) has the one generous budget of tests/browser.py: on a busy
    # machine a 30 s wait_for_load_state("networkidle") timed out (issue 27); nothing waits on the network
    with chromium_context(tmp_path_factory.mktemp("chromium-profile"), accept_downloads=True,
                          viewport={"width": 1500, "height": 2400}) as context:
        yield context


@pytest.fixture()
def tab(browser):
    page = browser.new_page()
    try:
        yield page
    finally:
        page.close()


# How many charts the page's chart iframes (pages/charts.py: same-origin srcdoc documents) hold, and how many of
# them drew their SVG (several .main-svg layers each).
_CHARTS_JS = """() => {
  let all = 0, drawn = 0;
  for (const frame of document.querySelectorAll('iframe[srcdoc*="data-chart="]')) {
    const doc = frame.contentDocument;
    if (!doc) continue;
    all += doc.querySelectorAll("[data-chart]").length;
    drawn += doc.querySelectorAll("[data-chart]:has(.main-svg)").length;
  }
  return [all, drawn];
}"""


def _load(tab, url: str, title: str, charts: int) -> None:
    """Open ``url`` and wait on the app itself: the script run finished with ``title`` shown, then every chart
    drew (one overall budget per wait, BUDGET_S)."""
    tab.goto(url)
    wait_for_app(tab, title)
    tab.wait_for_function(f"() => ({_CHARTS_JS})()[1] >= {charts}", timeout=BUDGET_S * 1000, polling=100)
    assert tab.locator('[data-testid="stException"]').count() == 0
    assert _charts(tab) == charts


def _charts(tab, which: str = "") -> int:
    """How many charts the page's chart iframes hold (pages/charts.py: one iframe per chart or row of charts)."""
    frames = tab.locator(CHART_FRAMES)
    return sum(frames.nth(i).content_frame.locator(f"[data-chart]{which}").count() for i in range(frames.count()))


def _download_csv(tab, label: str, tmp_path: Path) -> list[dict]:
    button = tab.locator('[data-testid="stDownloadButton"] button', has_text=label).first
    button.scroll_into_view_if_needed()
    with tab.expect_download() as info:  # the context's default budget
        button.click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def _shot(tab, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _expectations(truth: dict, sim) -> dict:
    """Per page: URL path, title, number of charts, a download label and the rows it must hold."""
    person = next(v for v in truth["violations"] if v["kind"] == "duplicate_user_name")
    upn = next(e["sourceIdentity"]["details"]["UserPrincipalName"] for e in sim.events
               if e["sourceIdentity"]["id"] == person["source_id"])
    failures = truth["events"]["failures_by_code"]
    return {
        "overview": ("", "Overview", 2, "top-errors (CSV)", min(10, len(failures)), "error_code"),
        "cycles": ("cycles", "Sync cycles", 3, "Download cycles (CSV)", len(truth["cycles"]), "gap_before_min"),
        "failures": ("failures", "Failures", 1, "Download all failures (CSV)", sum(failures.values()), "scim_type"),
        "skipped": ("skipped", "Skipped", 2, "skipped-default_access (CSV)",
                    len(truth["skips"]["default_access_users"]), "source_upn"),
        "violations": ("violations", "Constraint violations", 1, "violations-duplicate_user_name (CSV)",
                       sum(v["kind"] == "duplicate_user_name" for v in truth["violations"]), "evidence"),
        "scim": ("scim", "SCIM audit", 3, "scim-unlogged (CSV)", truth["scim"]["other_client"], "request_id"),
        "identity": (f"identity?q={upn}", "Identity", 1, "identity-matches (CSV)", 1, "source_id"),
        "export": ("export", "Export", 0, "Download events.csv", truth["events"]["total"], "activity_time"),
    }


def test_charts_load_plotly_under_a_base_url_path(demo_db, tmp_path, browser):
    """Behind a reverse proxy's prefix (server.baseUrlPath) the charts' relative bundle URL still resolves: on the
    Overview (Streamlit redirects /prefix to /prefix/) and on a page opened with a trailing slash."""
    with running_dashboard(str(demo_db), tmp_path / "server.log", base_path="provlens") as (base, _proc):
        assert base.endswith("/provlens")
        page = browser.new_page()  # (the browser context's default timeout: BUDGET_S)
        failed = []
        page.on("response", lambda r: failed.append(r.url) if r.status >= 400 and "/app/static/" in r.url else None)
        try:
            _load(page, f"{base}?range=all", "Overview", 2)
            _load(page, f"{base}/cycles/?range=all", "Sync cycles", 3)
        finally:
            page.close()
        assert failed == []


def test_a_bounded_table_downloads_every_row(server, tab, truth, tmp_path):
    """rows=1: the violations table shows one duplicate, its CSV download holds all of them (built on click)."""
    dup = [v for v in truth["violations"] if v["kind"] == "duplicate_user_name"]
    _load(tab, f"{server}/violations?range=all&rows=1", "Constraint violations", 1)
    got = _download_csv(tab, "Download all violations-duplicate_user_name (CSV)", tmp_path)
    assert sorted((r["source_id"], r["state"]) for r in got) == sorted((v["source_id"], v["state"]) for v in dup)
    assert len(dup) > 1


def test_deep_link_as_the_first_request_keeps_sidebar_and_filters(server, tab, truth):
    """Runs first on the fresh server: Streamlit would serve /cycles from pages/ without app.py."""
    app = truth["apps"][0]
    _load(tab, f"{server}/cycles?range=all&job={app['job_id']}", "Sync cycles", 3)
    nav = tab.locator('[data-testid="stSidebarNav"]').inner_text()
    assert "Constraint violations" in nav and "common" not in nav
    assert tab.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]', has_text="Provisioning job").count()
    cycles = str(sum(c["job_id"] == app["job_id"] for c in truth["cycles"]))
    tab.locator('[data-testid="stMetric"]', has_text="Logged cycles").filter(has_text=cycles).wait_for()
    assert "job=" in tab.url and "range=all" in tab.url
    _shot(tab, "deep-link-first-request")


@pytest.mark.parametrize("name", ["overview", "cycles", "failures", "skipped", "violations", "scim", "identity",
                                  "export"])
def test_page_loads_renders_charts_and_downloads_csv(server, tab, truth, sim, tmp_path, name):
    path, title, charts, label, rows, column = _expectations(truth, sim)[name]
    sep = "&" if "?" in path else "?"
    try:
        _load(tab, f"{server}/{path}{sep}range=all", title, charts)
    finally:
        _shot(tab, name)
    got = _download_csv(tab, label, tmp_path)
    assert len(got) == rows
    assert column in got[0]


def test_sidebar_job_filter_changes_numbers_and_url(server, tab, truth):
    app = truth["apps"][1]
    _load(tab, f"{server}/?range=all", "Overview", 2)
    events = tab.locator('[data-testid="stMetric"]', has_text="Events").first
    assert f"{truth['events']['total']:,}" in events.inner_text()
    tab.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]', has_text="Provisioning job").click()
    tab.get_by_role("option", name=f"{app['name']}:").click()
    tab.wait_for_url(lambda url: "job=" in url)
    expected = f"{truth['events']['by_service_principal'][app['service_principal_id']]:,}"
    tab.locator('[data-testid="stMetric"]', has_text="Events").filter(has_text=expected).wait_for()
    wait_for_app(tab, "Overview")
    # the filter survives a page switch in the browser, and the URL keeps it
    tab.locator('[data-testid="stSidebarNav"] a', has_text="Sync cycles").click()
    wait_for_app(tab, "Sync cycles")
    cycles = str(sum(c["job_id"] == app["job_id"] for c in truth["cycles"]))
    tab.locator('[data-testid="stMetric"]', has_text="Logged cycles").filter(has_text=cycles).wait_for()
    assert "job=" in tab.url
    _shot(tab, "cycles-one-job")
