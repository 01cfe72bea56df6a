"""The dashboard over a lake (``PROVLENS_LAKE``, issue 28 item 4), in AppTest.

A real local lake holds two tenants: the demo store copied by ``copy_store`` as "contoso", and a second store the
simulator built with other arguments, as "fabrikam". The Overview's KPIs on each tenant equal the plain reference
query (queries/reference.py) run on that tenant's own store; the tenant is picked in the sidebar and kept in the URL;
the tenant's local copy is built once and again only when the lake changed.
"""

from __future__ import annotations

import json
import os

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from ingest.lake.cache import VERSIONS_KEY, cache_path
from pages.common import md_text
from tests.conftest import ROOT
from tests.lake_tenants import KPI_LABELS, TENANTS, copy_into, other_store, reference_kpis, two_tenant_lake


@pytest.fixture(scope="module")
def other_db(tmp_path_factory) -> str:
    return other_store(tmp_path_factory.mktemp("other"))


@pytest.fixture(scope="module")
def lake(demo_db, other_db, tmp_path_factory) -> str:
    return two_tenant_lake(str(demo_db), other_db, tmp_path_factory.mktemp("lake"))


@pytest.fixture(scope="module")
def stores(demo_db, other_db) -> dict[str, str]:
    return {"contoso": str(demo_db), "fabrikam": other_db}


@pytest.fixture()
def app(lake, tmp_path, monkeypatch):
    monkeypatch.setenv("PROVLENS_LAKE", lake)
    monkeypatch.setenv("PROVLENS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PROVLENS_DB", str(tmp_path / "never-used.duckdb"))  # a lake wins over the database setting
    monkeypatch.chdir(ROOT)

    def start(**params) -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.query_params["range"] = "all"
        for key, value in params.items():
            at.query_params[key] = value
        return at.run()
    return start


def _kpis(at) -> dict[str, str]:
    shown = {m.label: m.value for m in at.metric}
    return {label: shown.get(label) for label in KPI_LABELS}


def _stat(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns


def test_overview_on_the_lake_equals_the_reference_on_each_store(app, stores, lake):
    # AppTest (1.67) re-runs only the page script after the first run (tests/test_app_pages.py), so the sidebar is
    # not clicked here: each view starts from its URL; tests/test_e2e_lake.py clicks the tenant picker in Chromium.
    at = app()
    assert not at.exception, at.exception
    assert at.sidebar.selectbox(key="f_tenant").options == list(TENANTS)
    assert at.sidebar.selectbox(key="f_tenant").value == "contoso"  # the first tenant when the URL names none
    assert at.query_params["tenant"] in ("contoso", ["contoso"])
    want = reference_kpis(stores["contoso"])
    assert _kpis(at) == want
    assert not [i for i in at.info if "Demo data" in i.value]  # the lake holds no store's metadata

    at = app(tenant="fabrikam")
    assert not at.exception, at.exception
    assert at.sidebar.selectbox(key="f_tenant").value == "fabrikam"
    assert at.query_params["tenant"] in ("fabrikam", ["fabrikam"])
    other = reference_kpis(stores["fabrikam"])
    assert other != want  # the two tenants differ, so the switch is visible
    assert _kpis(at) == other
    assert os.path.exists(cache_path(lake, "fabrikam"))


def test_an_unknown_tenant_in_the_url_is_named(app, stores):
    at = app(tenant="nobody")
    assert not at.exception, at.exception
    assert at.sidebar.selectbox(key="f_tenant").value == "contoso"
    assert any("tenant=nobody" in w.value and "not a tenant of this lake" in w.value for w in at.warning)
    assert _kpis(at) == reference_kpis(stores["contoso"])


def test_the_copy_is_built_again_only_when_the_lake_changed(app, lake, demo_db, stores, tmp_path):
    at = app()
    assert not at.exception, at.exception
    path = cache_path(lake, "contoso")
    first = _stat(path)
    with duckdb.connect(path, read_only=True) as con:
        versions = json.loads(con.execute("SELECT value FROM meta WHERE key = ?", [VERSIONS_KEY]).fetchone()[0])

    at = app()  # a new session, the lake unchanged: the copy is read as it is
    assert not at.exception, at.exception
    assert _stat(path) == first
    assert _kpis(at) == reference_kpis(stores["contoso"])

    copy_into(str(demo_db), lake, "contoso", full=True)  # a new commit per lake table (the same rows)
    at = app()
    assert not at.exception, at.exception
    assert _stat(path) != first
    with duckdb.connect(path, read_only=True) as con:
        rebuilt = json.loads(con.execute("SELECT value FROM meta WHERE key = ?", [VERSIONS_KEY]).fetchone()[0])
    # a table with rows got a commit (an empty one gets none: copy_store only makes sure it exists)
    assert set(rebuilt) == set(versions) and all(rebuilt[t] >= versions[t] for t in versions)
    assert rebuilt["events"] > versions["events"]
    assert _kpis(at) == reference_kpis(stores["contoso"])


def test_the_alerts_page_says_alerts_are_not_in_the_lake(app):
    at = app()
    at.switch_page("pages/alerts.py").run()
    assert not at.exception, at.exception
    assert any("Alerts are not in the lake" in i.value for i in at.info)
    assert not at.metric  # no alert counts that would read as "no alerts"


def test_a_missing_lake_is_one_line_on_the_page(tmp_path, monkeypatch):
    monkeypatch.setenv("PROVLENS_LAKE", str(tmp_path / "no-lake-here"))
    monkeypatch.setenv("PROVLENS_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    assert [e for e in at.error if "cannot be read" in e.value and md_text("no-lake-here") in e.value]
    assert not os.path.exists(tmp_path / "cache")


def test_a_tenant_in_the_url_of_a_database_dashboard_is_named(demo_db, monkeypatch):
    monkeypatch.delenv("PROVLENS_LAKE", raising=False)
    monkeypatch.setenv("PROVLENS_DB", str(demo_db))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params["tenant"] = "contoso"
    at.run()
    assert not at.exception, at.exception
    assert any("tenant=contoso" in w.value and "not a lake" in w.value for w in at.warning)
    assert not [s for s in at.sidebar.selectbox if s.key == "f_tenant"]


def test_the_dashboard_reads_a_lake_on_azure_storage(demo_db, stores, tmp_path, monkeypatch):
    """The same over Azurite (``az://container/path``; delta-rs reads the AZURE_STORAGE_* variables)."""
    from tests.azurite import running_azurite

    with running_azurite(tmp_path) as azurite:
        azurite.service().create_container("provlens")
        monkeypatch.setenv("AZURE_STORAGE_USE_EMULATOR", "true")
        monkeypatch.setenv("AZURITE_BLOB_STORAGE_URL", azurite.url)
        url = "az://provlens/lake"
        copy_into(str(demo_db), url, "contoso")
        monkeypatch.setenv("PROVLENS_LAKE", url)
        monkeypatch.setenv("PROVLENS_CACHE", str(tmp_path / "cache"))
        monkeypatch.chdir(ROOT)
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.query_params["range"] = "all"
        at.run()
        assert not at.exception, at.exception
        assert at.sidebar.selectbox(key="f_tenant").options == ["contoso"]
        assert _kpis(at) == reference_kpis(stores["contoso"])
        assert os.path.exists(cache_path(url, "contoso"))
