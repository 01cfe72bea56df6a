"""End-to-end: the real ``streamlit run serve.py`` with ``PROVLENS_LAKE`` on a two-tenant local lake, in Debian's
headless Chromium. The first visit builds the first tenant's local copy and shows its Overview (the KPIs equal the
reference query on that tenant's own store); the other tenant, named in the URL, shows in the sidebar's Tenant box
with its own numbers. Every wait is on the app's own state (tests/browser.py), no fixed sleep.
Screenshots: test-output/screenshots/lake-overview-<tenant>.png.
"""

from __future__ import annotations

import pytest

from bench.dashboard import running_dashboard
from ingest.lake.cache import cache_path
from tests.browser import chromium_context, wait_for_app
from tests.conftest import ROOT
from tests.lake_tenants import other_store, reference_kpis, two_tenant_lake

SCREENSHOTS = ROOT / "test-output" / "screenshots"


@pytest.fixture(scope="module")
def stores(demo_db, tmp_path_factory) -> dict[str, str]:
    return {"contoso": str(demo_db), "fabrikam": other_store(tmp_path_factory.mktemp("other"))}


@pytest.fixture(scope="module")
def served(stores, tmp_path_factory):
    """(base URL, lake URL, cache folder, server log) of a dashboard serving the lake."""
    lake = two_tenant_lake(stores["contoso"], stores["fabrikam"], tmp_path_factory.mktemp("lake"))
    cache = tmp_path_factory.mktemp("cache")
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    with pytest.MonkeyPatch.context() as mp:  # running_dashboard passes this process's environment on
        mp.setenv("PROVLENS_LAKE", lake)
        mp.setenv("PROVLENS_CACHE", str(cache))
        with running_dashboard(str(cache / "never-used.duckdb"), log) as (base, _proc):
            yield base, lake, cache, log


@pytest.fixture(scope="module")
def tab(tmp_path_factory):
    with chromium_context(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context.new_page()


def _metric(tab, label: str, value: str) -> None:
    """Until the page shows the metric ``label`` with ``value``."""
    tab.locator('[data-testid="stMetric"]', has_text=label).filter(has_text=value).first.wait_for()


def test_the_dashboard_reads_the_lake_and_switches_tenant(served, tab, stores, monkeypatch):
    base, lake, cache, log = served
    monkeypatch.setenv("PROVLENS_CACHE", str(cache))  # where cache_path looks, as the server does
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert "a lake" in log.read_text()  # the warm-up knew it serves a lake and read no database file

    tab.goto(f"{base}/?range=all")
    wait_for_app(tab, "Overview")  # the first visit built contoso's copy (a spinner said so meanwhile)
    contoso = reference_kpis(stores["contoso"])
    for label in ("Events", "Failures", "Sync cycles", "Identities"):
        _metric(tab, label, contoso[label])
    assert "tenant=contoso" in tab.url
    assert tab.locator('[data-testid="stException"]').count() == 0
    tab.screenshot(path=str(SCREENSHOTS / "lake-overview-contoso.png"))

    # The other tenant from the URL (a new page load). Picking it in the sidebar's box is not driven here: in this
    # Streamlit (1.67) under headless Chromium a sidebar selectbox change reverts every sidebar widget to its first
    # option during the rerun it starts (tests/test_e2e_dashboard.py's job-filter test fails the same way on main).
    tab.goto(f"{base}/?range=all&tenant=fabrikam")
    wait_for_app(tab, "Overview")
    assert "tenant=fabrikam" in tab.url  # kept by the app (an unknown tenant would be replaced by the first)
    fabrikam = reference_kpis(stores["fabrikam"])
    assert fabrikam["Events"] != contoso["Events"]
    for label in ("Events", "Failures", "Sync cycles", "Identities"):
        _metric(tab, label, fabrikam[label])
    wait_for_app(tab, "Overview")
    assert tab.locator('[data-testid="stException"]').count() == 0
    tab.screenshot(path=str(SCREENSHOTS / "lake-overview-fabrikam.png"))
    for tenant in ("contoso", "fabrikam"):
        with open(cache_path(lake, tenant), "rb") as fh:  # each tenant's own copy, a DuckDB file
            assert fh.read(16)[8:12] == b"DUCK"
